package agent

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/pinhole/pinhole/agent/internal/expose"
	"github.com/pinhole/pinhole/agent/internal/relaylink"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/splice"
	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/smux"
)

// missedHeartbeats is how many heartbeat intervals without any answer from
// the relay end a link. Three tolerates two lost round trips on a lossy
// uplink while still noticing a dead relay within a minute at 15s.
const missedHeartbeats = 3

// serve runs one link until it ends or ctx is done.
func (a *Agent) serve(ctx context.Context, conn *relaylink.Conn) {
	log := a.log.With("relay", conn.Target.Address, "transport", conn.Transport)
	ctrl, err := conn.Mux.OpenStream()
	if err != nil {
		log.Warn("open control stream", "err", err)
		conn.Close()
		return
	}
	cfg := a.cfg.Load()
	c := &control{st: ctrl}
	if c.send(protocol.Hello{Name: cfg.Name, Software: Software, Heartbeat: cfg.heartbeat()}) != nil || c.send(registerMsg(cfg)) != nil {
		log.Warn("relay link failed during registration")
		conn.Close()
		return
	}
	a.state.connected(conn)
	log.Info("connected to relay", "addr", conn.Addr, "observed", conn.Observed)

	// tn knows this link's tunneled streams: Resets go both ways on the
	// control stream, and its Guard bounds what stalled ones may hold.
	tn := splice.NewTunnels(splice.NewGuard(cfg.Tuning.StallSlots()), &a.stats.Tunnels,
		func(m protocol.Reset) error { return c.send(m) })
	defer tn.Wait()

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(lctx, func() {
		if ctx.Err() != nil {
			// Stopping (SIGTERM): tell the relay, so it frees our ports
			// now instead of after agent_timeout.
			c.send(protocol.Notice{Code: protocol.NoticeShutdown, Text: "agent shutting down"})
			conn.Linger(300 * time.Millisecond)
		}
		conn.Close()
	})
	defer stop()

	var wg sync.WaitGroup
	wg.Go(func() { a.readControl(lctx, c, tn, log); cancel() })
	wg.Go(func() { a.heartbeat(lctx, c, conn, log); cancel() })
	wg.Go(func() { a.acceptStreams(lctx, conn.Mux, tn, log); cancel() })
	wg.Go(func() { a.watchReload(lctx, c) })
	if conn.Transport == link.TCP && cfg.Transport == TransportAuto {
		wg.Go(func() { a.probeUDP(lctx, conn, log); cancel() })
	}
	wg.Wait()
	conn.Close()
	a.state.disconnected()
	if ctx.Err() == nil {
		log.Warn("relay link lost", "reason", a.state.lastNotice())
	}
}

// control serialises writes on the control stream.
type control struct {
	mu sync.Mutex
	st *smux.Stream
}

func (c *control) send(m protocol.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return protocol.WriteMessage(c.st, m)
}

func registerMsg(cfg *Config) protocol.Register {
	var r protocol.Register
	for _, e := range cfg.Expose {
		r.Exposures = append(r.Exposures, protocol.Exposure{Name: e.Name, Proto: e.Proto, RemotePort: e.RemotePort})
	}
	sort.Slice(r.Exposures, func(i, j int) bool { return r.Exposures[i].Name < r.Exposures[j].Name })
	return r
}

func (a *Agent) readControl(ctx context.Context, c *control, tn *splice.Tunnels, log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) {
	for {
		m, err := protocol.ReadMessage(c.st)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case protocol.RegisterReply:
			for _, st := range m.Statuses {
				if st.Status == protocol.StatusOK {
					log.Info("exposure registered", "exposure", st.Name)
				} else {
					log.Warn("exposure refused by relay", "exposure", st.Name, "status", st.Status, "detail", st.Detail)
				}
			}
			a.state.setExposures(m.Statuses)
		case protocol.Pong:
			a.state.pong(time.Duration(time.Now().UnixNano()-m.SentNanos), m.Observed)
		case protocol.Ping:
			hb := protocol.Heartbeat(m)
			c.send(protocol.Pong(hb))
		case protocol.Reset:
			tn.Reset(m.Stream)
		case protocol.Notice:
			// The relay is closing this link; leave now rather than
			// wait for the silence to time out.
			a.state.notice(m)
			log.Warn("relay is closing the link", "reason", m.Text)
			return
		}
	}
}

// heartbeat pings the relay every interval (with jitter) and ends the link
// when nothing authenticated has arrived for missedHeartbeats intervals.
// The pings also keep the NAT mapping of the agent's socket alive.
func (a *Agent) heartbeat(ctx context.Context, c *control, conn *relaylink.Conn, log interface{ Warn(string, ...any) }) {
	var seq uint32
	start := time.Now()
	first := true // ping at once: status shows the RTT from the start
	for {
		interval := a.cfg.Load().heartbeat()
		wait := jitter(interval)
		if first {
			wait, first = 0, false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		last := conn.LastReceive()
		if last.Before(start) {
			last = start // nothing received yet: count from the link's start
		}
		if silent := time.Since(last); silent > missedHeartbeats*interval {
			log.Warn("relay silent, reconnecting", "silent", silent.Round(time.Second))
			return
		}
		seq++
		if err := c.send(protocol.Ping{Seq: seq, SentNanos: time.Now().UnixNano()}); err != nil {
			return
		}
	}
}

// acceptStreams serves every stream the relay opens.
func (a *Agent) acceptStreams(ctx context.Context, mux *smux.Session, tn *splice.Tunnels, log interface{ Warn(string, ...any) }) {
	for {
		st, err := mux.AcceptStream()
		if err != nil {
			return
		}
		a.streams.Go(func() {
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			h, err := protocol.ReadStreamHeader(st)
			if err != nil {
				tn.Refuse(st, protocol.ResetAborted)
				return
			}
			st.SetReadDeadline(time.Time{})
			svc := (*a.services.Load())[h.Exposure]
			if svc == nil {
				log.Warn("stream for unknown exposure", "exposure", h.Exposure)
				tn.Refuse(st, protocol.ResetAborted)
				return
			}
			expose.Serve(ctx, st, h, svc, tn, &a.stats, a.log) // the logger already names the agent
		})
	}
}

// watchReload re-sends Register after a config reload.
func (a *Agent) watchReload(ctx context.Context, c *control) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.reload:
			c.send(registerMsg(a.cfg.Load()))
		}
	}
}

// probeUDP checks periodically, while on the TCP fallback, whether UDP to
// the relay works again, and ends the TCP link to move back when no
// tunneled connection would be cut.
func (a *Agent) probeUDP(ctx context.Context, conn *relaylink.Conn, log interface{ Info(string, ...any) }) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(a.cfg.Load().udpProbe())):
		}
		if !a.dialer(a.cfg.Load()).ProbeUDP(ctx, conn.Target) {
			continue
		}
		if n := conn.Mux.NumStreams(); n > 1 {
			log.Info("udp reaches the relay again; moving when idle", "streams", n-1)
			continue
		}
		log.Info("udp reaches the relay again, leaving the tcp fallback")
		return
	}
}
