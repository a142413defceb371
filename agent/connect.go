package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/smux"
)

// connectListener is a connect entry's local socket, opened by New so
// that a port already in use is reported at start.
type connectListener struct {
	c   Connect
	ln  net.Listener // tcp
	udp *net.UDPConn // udp
}

// listenConnects opens the local sockets of cfg's connect entries.
func listenConnects(cfg *Config) ([]connectListener, error) {
	var out []connectListener
	fail := func(err error) ([]connectListener, error) {
		closeConnects(out)
		return nil, err
	}
	for _, c := range cfg.Connect {
		l := connectListener{c: c}
		if c.Proto == protocol.ProtoUDP {
			ua, err := net.ResolveUDPAddr("udp", c.Listen)
			if err != nil {
				return fail(fmt.Errorf("connect to %s/%s: %w", c.Peer, c.Service, err))
			}
			if l.udp, err = net.ListenUDP("udp", ua); err != nil {
				return fail(fmt.Errorf("connect to %s/%s: %w", c.Peer, c.Service, err))
			}
		} else {
			ln, err := net.Listen("tcp", c.Listen)
			if err != nil {
				return fail(fmt.Errorf("connect to %s/%s: %w", c.Peer, c.Service, err))
			}
			l.ln = ln
		}
		out = append(out, l)
	}
	return out, nil
}

func closeConnects(ls []connectListener) {
	for _, l := range ls {
		if l.ln != nil {
			l.ln.Close()
		}
		if l.udp != nil {
			l.udp.Close()
		}
	}
}

// serveConnect carries each client of a connect entry's local socket to
// the peer's service over the peer session, until ctx ends. A client that
// arrives before the session is up waits for it.
func (a *Agent) serveConnect(ctx context.Context, l connectListener, w *peerWant) {
	c := l.c
	log := a.log.With("peer", c.Peer, "service", c.Service, "listen", c.Listen)
	if l.udp != nil {
		context.AfterFunc(ctx, func() { l.udp.Close() })
		a.connectUDP(ctx, l.udp, c, w, log)
		return
	}
	ln := l.ln
	context.AfterFunc(ctx, func() { ln.Close() })
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(50 * time.Millisecond) // out of fds: do not spin
			continue
		}
		a.streams.Go(func() { a.connectTCP(ctx, conn, c, w, log) })
	}
}

func (a *Agent) connectTCP(ctx context.Context, conn net.Conn, c Connect, w *peerWant, log *slog.Logger) {
	s := w.wait(ctx, connectWait)
	if s == nil {
		log.Warn("connect: no session with the peer", "client", conn.RemoteAddr(), "status", w.statusText())
		resetTCP(conn)
		return
	}
	st, err := s.open(protocol.StreamHeader{Proto: protocol.ProtoTCP, Exposure: c.Service, Client: addrOf(conn.RemoteAddr())})
	if err != nil {
		resetTCP(conn)
		return
	}
	s.tn.Splice(conn, st, 0, &a.streams, nil)
}

// resetTCP closes conn with an RST, as a refused connection looks.
func resetTCP(conn net.Conn) {
	if t, ok := conn.(*net.TCPConn); ok {
		t.SetLinger(0)
	}
	conn.Close()
}

func addrOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(interface{ AddrPort() netip.AddrPort }); ok {
		return u.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// udpFlow is one local UDP client carried on its own stream.
type udpFlow struct {
	st   *smux.Stream
	last time.Time
}

// connectUDP keeps one stream per local client address, datagrams framed
// with their length; a flow ends after udpConnectIdle of silence.
func (a *Agent) connectUDP(ctx context.Context, pc *net.UDPConn, c Connect, w *peerWant, log *slog.Logger) {
	var mu sync.Mutex
	flows := map[netip.AddrPort]*udpFlow{}
	defer func() {
		mu.Lock()
		for _, f := range flows {
			f.st.Close()
		}
		mu.Unlock()
	}()
	go func() { // idle sweep
		t := time.NewTicker(udpConnectIdle / 4)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			for k, f := range flows {
				if time.Since(f.last) > udpConnectIdle {
					f.st.Close()
					delete(flows, k)
				}
			}
			mu.Unlock()
		}
	}()
	buf := make([]byte, 2+protocol.MaxUDPPayload)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf[2:])
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		mu.Lock()
		f := flows[from]
		if f != nil {
			f.last = time.Now()
		}
		mu.Unlock()
		if f == nil {
			s := w.wait(ctx, connectWait)
			if s == nil {
				log.Warn("connect: no session with the peer; datagram dropped", "client", from, "status", w.statusText())
				continue
			}
			st, err := s.open(protocol.StreamHeader{Proto: protocol.ProtoUDP, Exposure: c.Service, Client: from})
			if err != nil {
				continue
			}
			f = &udpFlow{st: st, last: time.Now()}
			mu.Lock()
			flows[from] = f
			mu.Unlock()
			go func() {
				rb := make([]byte, protocol.MaxUDPPayload)
				for {
					p, err := protocol.ReadUDPFrame(st, rb)
					if err != nil {
						break
					}
					pc.WriteToUDPAddrPort(p, from)
				}
				st.Close()
				mu.Lock()
				if flows[from] == f {
					delete(flows, from)
				}
				mu.Unlock()
			}()
		}
		frame, _ := protocol.AppendUDPFrame(buf[:0], buf[2:2+n])
		f.st.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := f.st.Write(frame); err != nil && !errors.Is(err, io.ErrShortWrite) {
			f.st.Close()
		}
	}
}

func (w *peerWant) statusText() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}
