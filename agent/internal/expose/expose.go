// Package expose serves the streams the relay opens for an agent's
// exposures: a TCP stream becomes one connection to the local service, a
// UDP stream becomes one flow (one client address) with its own local
// socket. Only services named in the agent's own config are ever dialed;
// the relay names an exposure, never a destination.
package expose

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/agent/internal/proxyproto"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/internal/splice"
	"github.com/pinhole/pinhole/protocol"
)

// Service is one exposure as the agent serves it.
type Service struct {
	Name        string
	Proto       protocol.Proto
	Local       string // host:port of the local service
	Proxy       proxyproto.Version
	IdleTimeout time.Duration // UDP flows
	MaxFlows    int           // UDP flows at once

	flows atomic.Int64
}

// Stats are counters shared by all services of an agent.
type Stats struct {
	Streams     atomic.Uint64 // streams served
	DialFailed  atomic.Uint64 // local service unreachable
	FlowsRefuse atomic.Uint64 // UDP flows refused by MaxFlows
	BytesIn     atomic.Uint64 // relay -> local
	BytesOut    atomic.Uint64 // local -> relay
	Tunnels     splice.Stats  // resets sent, received, stalled
}

// Stream is what the agent gets from smux for each relay-opened stream.
type Stream = splice.Stream

// dialTimeout bounds connecting to a local service; a service that does
// not answer within it is down, and the client should learn that quickly.
const dialTimeout = 5 * time.Second

// Serve handles one stream whose header named svc, and closes it (a TCP
// stream, once spliced, from goroutines it starts in wg). tn is the link's
// registry: a stream that fails here is reset on the relay's side too, and
// a Reset from the relay aborts it.
func Serve(ctx context.Context, st Stream, h protocol.StreamHeader, svc *Service, tn *splice.Tunnels, wg *sync.WaitGroup, stats *Stats, log *slog.Logger) {
	stats.Streams.Add(1)
	log = log.With("exposure", svc.Name, "client", h.Client)
	if h.Proto != svc.Proto {
		log.Warn("stream protocol does not match exposure", "got", h.Proto, "want", svc.Proto)
		tn.Refuse(st, protocol.ResetAborted)
		return
	}
	if svc.Proto == protocol.ProtoUDP {
		serveUDP(ctx, st, svc, tn, stats, log)
		return
	}
	serveTCP(ctx, st, h, svc, tn, wg, stats, log)
}

func serveTCP(ctx context.Context, st Stream, h protocol.StreamHeader, svc *Service, tn *splice.Tunnels, wg *sync.WaitGroup, stats *Stats, log *slog.Logger) {
	d := net.Dialer{Timeout: dialTimeout}
	lc, err := d.DialContext(ctx, "tcp", svc.Local)
	if err != nil {
		stats.DialFailed.Add(1)
		log.Warn("dial local service", "addr", svc.Local, "err", err)
		// The client gets a reset, as from a refused connection.
		tn.Refuse(st, protocol.ResetAborted)
		return
	}
	if svc.Proxy != proxyproto.Off {
		if _, err := lc.Write(proxyproto.Append(nil, svc.Proxy, h.Client, h.Server)); err != nil {
			log.Warn("write proxy header", "addr", svc.Local, "err", err)
			lc.Close()
			tn.Refuse(st, protocol.ResetAborted)
			return
		}
	}
	log.Debug("tcp stream open", "addr", svc.Local)
	tn.Splice(lc, st, int64(h.Read), wg, func(res splice.Result) {
		stats.BytesIn.Add(uint64(res.BToA))
		stats.BytesOut.Add(uint64(res.AToB))
		log.Debug("tcp stream ended", "in", res.BToA, "out", res.AToB, "err", res.Err) // err nil: closed cleanly
	})
}

func serveUDP(ctx context.Context, st Stream, svc *Service, tn *splice.Tunnels, stats *Stats, log *slog.Logger) {
	defer st.Close()
	if n := svc.flows.Add(1); svc.MaxFlows > 0 && n > int64(svc.MaxFlows) {
		svc.flows.Add(-1)
		stats.FlowsRefuse.Add(1)
		log.Warn("udp flow refused: max_flows reached", "max_flows", svc.MaxFlows)
		return
	}
	defer svc.flows.Add(-1)
	lc, err := net.Dial("udp", svc.Local)
	if err != nil {
		stats.DialFailed.Add(1)
		log.Warn("open local udp socket", "addr", svc.Local, "err", err)
		return
	}
	defer lc.Close()
	// A Reset from the relay ends the flow; closing the stream also wakes
	// a write blocked on its window.
	defer tn.Track(st.ID(), func() { st.Close(); lc.Close() })()
	// Each queued datagram costs ~2 KiB of socket buffer (skb truesize),
	// so the 208 KiB default holds only ~100: give bursts more room.
	if u, ok := lc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(512 << 10)
	}
	stop := context.AfterFunc(ctx, func() { st.Close(); lc.Close() })
	defer stop()

	var last atomic.Int64 // unix nanos of the last datagram either way
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer lc.Close() // unblock the local reader when the stream ends
		buf := make([]byte, protocol.MaxUDPPayload)
		for {
			p, err := protocol.ReadUDPFrame(st, buf)
			if err != nil {
				return
			}
			last.Store(time.Now().UnixNano())
			stats.BytesIn.Add(uint64(len(p)))
			lc.Write(p) // a lost datagram is UDP's normal failure
		}
	}()
	idle := svc.IdleTimeout
	if idle <= 0 {
		idle = time.Minute
	}
	buf := make([]byte, 2+protocol.MaxUDPPayload)
	for {
		lc.SetReadDeadline(time.Now().Add(idle / 4))
		n, err := lc.Read(buf[2:])
		if err != nil {
			if splice.NetTimeout(err) {
				if time.Since(time.Unix(0, last.Load())) >= idle {
					log.Debug("udp flow idle, closing", "idle", idle)
					break
				}
				continue
			}
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				break
			}
			continue // ECONNREFUSED from ICMP: the service is down right now
		}
		last.Store(time.Now().UnixNano())
		frame, _ := protocol.AppendUDPFrame(buf[:0], buf[2:2+n])
		stats.BytesOut.Add(uint64(n))
		if _, err := st.Write(frame); err != nil {
			break
		}
	}
	st.Close()
	<-done
}
