package agent

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/agent/internal/expose"
	"github.com/pinhole/pinhole/agent/internal/relaylink"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/internal/splice"
	"github.com/pinhole/pinhole/protocol"
)

// linkEnd says how a link ended, for the reconnect policy in Run.
type linkEnd struct {
	registered bool // Hello and Register went out
	lived      time.Duration
	why        endReason
}

// clockWarn is the clock difference to the relay worth a warning; smaller
// ones are round-trip noise or ordinary drift.
const clockWarn = 30 * time.Second

// endReason is why a link ended; the first goroutine of serve to end the
// link sets it.
type endReason int32

const (
	endClosed    endReason = iota // the relay or the network closed it (Notice, Refuse, error)
	endSilent                     // the relay stopped answering
	endPrimary                    // the first relay of the list answers again
	endUDP                        // udp works again (leaving the tcp fallback)
	endDuplicate                  // the relay says another agent uses this agent's key
	endReplaced                   // the relay says a newer session with this agent's key took over
	endNetwork                    // the uplink changed (NetworkChanged): re-dial at once
)

// serve runs one link, to the relay at index idx of the list, until it
// ends or ctx is done.
func (a *Agent) serve(ctx context.Context, conn *relaylink.Conn, idx int) linkEnd {
	log := a.log.With("relay", conn.Target.Address, "transport", conn.Transport)
	ctrl, err := conn.OpenControl()
	if err != nil {
		log.Warn("open control channel", "err", err)
		conn.Close()
		return linkEnd{}
	}
	cfg := a.cfg.Load()
	c := &control{st: ctrl, asked: make(chan struct{}, 1), retuned: make(chan struct{}, 1)}
	hello := protocol.Hello{Name: cfg.Name, Software: Software, Heartbeat: a.heartbeatNow()}
	if c.send(hello) != nil || c.send(registerMsg(cfg)) != nil {
		log.Warn("relay link failed during registration")
		conn.Close()
		return linkEnd{}
	}
	if conn.Transport == link.UDP {
		conn.SetKeepaliveHandler(func(sent uint64, observed netip.AddrPort) {
			c.keepalives.Store(true)
			a.heard(conn, time.Duration(time.Now().UnixNano()-int64(sent)), observed)
		})
	}
	start := time.Now()
	a.state.connected(conn)
	if conn.Transport == link.UDP {
		a.wakeNAT(conn.Addr, conn.Observed)
	}
	log.Info("connected to relay", "addr", conn.Addr, "observed", conn.Observed, "clock_offset", conn.ClockOffset.Round(time.Millisecond))
	if conn.ClockOffset > clockWarn || conn.ClockOffset < -clockWarn {
		// Not fatal (the handshake copes), but logs and certificates on
		// this router are wrong: a router without a real-time clock, or NTP
		// blocked.
		log.Warn("this system's clock differs from the relay's", "relay_minus_ours", conn.ClockOffset.Round(time.Second))
	}
	a.peers.linkUp(conn, c)
	defer a.peers.linkDown(conn)

	// tn knows this link's tunneled streams: Resets go both ways on the
	// control stream, and its Guard bounds what stalled ones may hold.
	tn := splice.NewTunnels(splice.NewGuard(cfg.Tuning.StallSlots()), &a.stats.Tunnels,
		func(m protocol.Reset) error { return c.send(m) })
	tn.SetArrivals(conn.Arrivals())
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

	var why atomic.Int32 // 1 + the endReason of the first to end the link (0: none yet)
	finish := func(r endReason) {
		why.CompareAndSwap(0, int32(r)+1)
		cancel()
	}
	replies := make(chan bool, 1)
	var wg sync.WaitGroup
	wg.Go(func() { finish(a.readControl(lctx, c, conn, tn, replies, log)) })
	wg.Go(func() { finish(a.heartbeat(lctx, c, conn, log)) })
	wg.Go(func() { a.acceptStreams(lctx, conn.Link, tn, log); cancel() })
	wg.Go(func() { a.watchReload(lctx, c, hello.Heartbeat) })
	wg.Go(func() {
		if a.watchNetChange(lctx, c, conn, log) {
			finish(endNetwork)
		}
	})
	wg.Go(func() { a.retryRefused(lctx, c, replies, log) })
	tcpFallback := conn.Transport == link.TCP && cfg.Transport == TransportAuto
	if tcpFallback || (idx > 0 && cfg.Transport != TransportTCP) {
		wg.Go(func() { finish(a.probeUDP(lctx, conn, idx, log)) })
	}
	wg.Wait()
	conn.Close()
	tn.LinkDown()
	a.state.disconnected()
	end := linkEnd{registered: true, lived: time.Since(start), why: endReason(max(0, why.Load()-1))}
	if ctx.Err() == nil {
		lvl := slog.LevelWarn
		switch end.why {
		case endDuplicate:
			lvl = slog.LevelDebug // readControl said it once, at Error level
		case endNetwork:
			lvl = slog.LevelInfo // expected: the uplink changed
		}
		log.Log(ctx, lvl, "relay link lost", "reason", a.state.lastNotice())
	}
	return end
}

// control serialises writes on the control stream.
type control struct {
	mu      sync.Mutex
	st      link.Conn
	asked   chan struct{} // a request that expects an answer went out (for heartbeat)
	retuned chan struct{} // the heartbeat interval changed (for heartbeat)
	// keepalives: the relay answered a keepalive datagram, so the
	// heartbeat needs no control Ping any more (link/keepalive.go).
	keepalives atomic.Bool
}

// request sends a message the relay answers (a Register), so the heartbeat
// notices at once if no answer comes.
func (c *control) request(m protocol.Message) error {
	select {
	case c.asked <- struct{}{}:
	default:
	}
	return c.send(m)
}

func (c *control) send(m protocol.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.SetWriteDeadline(time.Now().Add(controlWriteWait))
	return protocol.WriteMessage(c.st, m)
}

func registerMsg(cfg *Config) protocol.Register {
	var r protocol.Register
	for _, e := range cfg.Expose {
		if e.RemotePort == 0 {
			continue // offered to peers only
		}
		r.Exposures = append(r.Exposures, protocol.Exposure{Name: e.Name, Proto: e.Proto, RemotePort: e.RemotePort})
	}
	sort.Slice(r.Exposures, func(i, j int) bool { return r.Exposures[i].Name < r.Exposures[j].Name })
	return r
}

// readControl handles the relay's control messages until the link ends;
// it says why it ended. replies gets, after every RegisterReply, whether
// some exposure waits for a retry.
func (a *Agent) readControl(ctx context.Context, c *control, conn *relaylink.Conn, tn *splice.Tunnels, replies chan bool, log *slog.Logger) endReason {
	logged := map[string]protocol.ExposureStatus{} // log each exposure's verdict once per change
	for {
		m, err := protocol.ReadMessage(c.st)
		if err != nil {
			return endClosed
		}
		switch m := m.(type) {
		case protocol.RegisterReply:
			for _, st := range m.Statuses {
				if st.Status != protocol.StatusOK {
					a.links.ExposuresRefused.Add(1)
				}
				if prev, ok := logged[st.Name]; ok && prev == st {
					continue
				}
				logged[st.Name] = st
				if st.Status == protocol.StatusOK {
					log.Info("exposure registered", "exposure", st.Name)
				} else {
					log.Warn("exposure refused by relay", "exposure", st.Name, "status", st.Status, "detail", st.Detail, "retry", retryable(st.Status))
				}
			}
			a.state.setExposures(m.Statuses)
			select {
			case <-replies: // replace an unread older verdict
			default:
			}
			replies <- a.state.refusedRetryable()
		case protocol.Pong:
			a.heard(conn, time.Duration(time.Now().UnixNano()-m.SentNanos), m.Observed)
		case protocol.Ping:
			hb := protocol.Heartbeat(m)
			c.send(protocol.Pong(hb))
		case protocol.Reset:
			tn.Reset(m.Stream)
		case protocol.PeerIntro:
			a.peers.intro(m, a.log)
		case protocol.Notice:
			// The relay is closing this link; leave now rather than
			// wait for the silence to time out.
			a.state.notice(m)
			if m.Code == protocol.NoticeDuplicateKey {
				a.links.DuplicateKey.Add(1)
				// Two agents with one key replace each other on the
				// relay; only the operator can fix it. Say so once.
				if a.dupWarned.CompareAndSwap(false, true) {
					log.Error("another agent uses this agent's key: the relay keeps one of them; give each agent its own key (pinhole keygen)", "reason", m.Text)
				} else {
					log.Debug("relay refused the link again: duplicate key", "reason", m.Text)
				}
				return endDuplicate
			}
			log.Warn("relay is closing the link", "reason", m.Text)
			if m.Code == protocol.NoticeReplaced {
				return endReplaced
			}
			return endClosed
		}
	}
}

// heard records the answer to a heartbeat (a Pong, or an answered
// keepalive datagram): the round trip, and the address the relay saw.
func (a *Agent) heard(conn *relaylink.Conn, rtt time.Duration, observed netip.AddrPort) {
	if a.state.pong(rtt, observed) && conn.Transport == link.UDP {
		// The relay sees us at a new address: the NAT rebound or was
		// replaced. Measure it again.
		a.wakeNAT(conn.Addr, observed)
	}
}

// acceptStreams serves every stream the relay opens.
func (a *Agent) acceptStreams(ctx context.Context, mux *link.Link, tn *splice.Tunnels, log interface{ Warn(string, ...any) }) {
	for {
		st, err := mux.AcceptStream()
		if err != nil {
			return
		}
		a.streams.Go(func() {
			st.SetReadDeadline(time.Now().Add(streamHeaderWait))
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
			expose.Serve(ctx, st, h, svc, tn, &a.streams, &a.stats, a.log) // the logger already names the agent
		})
	}
}

// watchReload re-sends Register after a config reload, and announces a
// new heartbeat interval (a reload, or a measured mapping lifetime) to
// the relay before the heartbeat applies it.
//
// announced is the interval Hello carried: a reload between Hello and
// this goroutine's start must still be announced (reading the interval
// here instead would take the new one for the announced one).
func (a *Agent) watchReload(ctx context.Context, c *control, announced time.Duration) {
	for {
		reload := false
		select {
		case <-ctx.Done():
			return
		case <-a.reload:
			reload = true
		case <-a.retune:
		}
		if hb := a.heartbeatNow(); hb != announced {
			// The relay's watchdog must follow, or a longer interval
			// gets this agent dropped as silent.
			c.send(protocol.SetHeartbeat{Interval: hb})
			announced = hb
			select {
			case c.retuned <- struct{}{}:
			default:
			}
		}
		if reload {
			c.request(registerMsg(a.cfg.Load()))
		}
	}
}

// probeUDP checks periodically whether a better path works again: the
// first relay of the list while the link is to another one, or UDP to the
// same relay while on the TCP fallback. It ends the link to move when no
// tunneled connection would be cut, and says why.
func (a *Agent) probeUDP(ctx context.Context, conn *relaylink.Conn, idx int, log *slog.Logger) endReason {
	for {
		select {
		case <-ctx.Done():
			return endClosed
		case <-time.After(jitter(a.cfg.Load().udpProbe())):
		}
		cfg := a.cfg.Load()
		d := a.dialer(cfg)
		why := endClosed
		switch {
		case idx > 0 && len(cfg.Relays) > 0 && cfg.Transport != TransportTCP &&
			d.ProbeUDP(ctx, relaylink.Target{Address: cfg.Relays[0].Address, PublicKey: cfg.Relays[0].PublicKey}):
			why = endPrimary
		case conn.Transport == link.TCP && cfg.Transport == TransportAuto && d.ProbeUDP(ctx, conn.Target):
			why = endUDP
		default:
			continue
		}
		if n := conn.NumStreams(); n > 1 {
			log.Info("a preferred path works again; moving when idle", "primary", why == endPrimary, "streams", n-1)
			continue
		}
		if why == endPrimary {
			log.Info("the first relay answers again, moving back to it", "primary", cfg.Relays[0].Address)
		} else {
			log.Info("udp reaches the relay again, leaving the tcp fallback")
		}
		return why
	}
}
