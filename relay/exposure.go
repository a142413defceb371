package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/pinhole/pinhole/internal/splice"
	"github.com/pinhole/pinhole/protocol"
)

type portKey struct {
	proto protocol.Proto
	port  uint16
}

// exposure is one public port the relay holds for an agent.
type exposure struct {
	s     *session
	name  string
	proto protocol.Proto
	port  uint16

	ln      net.Listener // tcp
	unwatch func()       // tcp: stops the relay's acceptor watching ln
	udp     *net.UDPConn // udp
	fl      *flowTable   // udp
	wg      sync.WaitGroup
	end     chan struct{}
}

// apply makes the session's exposures equal to want, keeping unchanged
// ones untouched (their connections live on), and reports on each.
func (s *session) apply(want []protocol.Exposure) protocol.RegisterReply {
	entry := s.entry.Load()
	wanted := map[string]protocol.Exposure{}
	for _, w := range want {
		wanted[w.Name] = w
	}
	s.expMu.Lock()
	defer s.expMu.Unlock()
	for name, e := range s.exposures {
		if w, ok := wanted[name]; !ok || w.Proto != e.proto || w.RemotePort != e.port || !entry.Allows(e.proto, e.port) {
			e.close()
			delete(s.exposures, name)
			s.log.Info("exposure closed", "exposure", name, "port", e.port, "proto", e.proto)
		}
	}
	var reply protocol.RegisterReply
	seen := map[string]bool{}
	for _, w := range want {
		st := protocol.ExposureStatus{Name: w.Name}
		switch {
		case !protocol.ValidName(w.Name) || seen[w.Name] || w.RemotePort == 0:
			st.Status, st.Detail = protocol.StatusInvalid, "bad or duplicate name, or port 0"
		case !entry.Allows(w.Proto, w.RemotePort):
			st.Status, st.Detail = protocol.StatusNotAllowed, fmt.Sprintf("%s port %d is not in this agent's allow_ports", w.Proto, w.RemotePort)
			s.logRefusalLocked(st, "exposure refused: port not allowed", "exposure", w.Name, "port", w.RemotePort, "proto", w.Proto)
		case s.exposures[w.Name] != nil:
			st.Status = protocol.StatusOK
		default:
			e, status, err := s.open(w)
			st.Status = status
			if err != nil {
				st.Detail = err.Error()
				s.logRefusalLocked(st, "exposure refused", "exposure", w.Name, "port", w.RemotePort, "proto", w.Proto, "err", err)
			} else {
				s.exposures[w.Name] = e
				delete(s.refused, w.Name)
				s.log.Info("exposure open", "exposure", w.Name, "port", w.RemotePort, "proto", w.Proto)
			}
		}
		seen[w.Name] = true
		reply.Statuses = append(reply.Statuses, st)
	}
	return reply
}

// logRefusalLocked logs a refusal at Warn when it is news for this session
// and at Debug when the agent merely retries (it re-registers a port in use
// every few seconds); s.expMu is held.
func (s *session) logRefusalLocked(st protocol.ExposureStatus, msg string, args ...any) {
	s.r.stats.ExposuresRefused.Add(1)
	if s.refused[st.Name] == st.Status {
		s.log.Debug(msg, args...)
		return
	}
	if s.refused == nil {
		s.refused = map[string]protocol.Status{}
	}
	s.refused[st.Name] = st.Status
	s.log.Warn(msg, args...)
}

// reconfigure applies a new allow-list to a live session and tells the
// agent about exposures it lost.
func (s *session) reconfigure(entry *AgentEntry) {
	s.entry.Store(entry)
	var lost protocol.RegisterReply
	s.expMu.Lock()
	for name, e := range s.exposures {
		if !entry.Allows(e.proto, e.port) {
			e.close()
			delete(s.exposures, name)
			s.log.Info("exposure closed: no longer allowed", "exposure", name, "port", e.port, "proto", e.proto)
			lost.Statuses = append(lost.Statuses, protocol.ExposureStatus{Name: name, Status: protocol.StatusNotAllowed,
				Detail: "removed from allow_ports on the relay"})
		}
	}
	s.expMu.Unlock()
	if len(lost.Statuses) > 0 {
		s.send(lost)
	}
}

func (s *session) open(w protocol.Exposure) (*exposure, protocol.Status, error) {
	r := s.r
	k := portKey{w.Proto, w.RemotePort}
	r.mu.Lock()
	if holder := r.ports[k]; holder != nil && holder != s {
		r.mu.Unlock()
		return nil, protocol.StatusPortInUse, fmt.Errorf("%s port %d is held by agent %q", w.Proto, w.RemotePort, holder.entry.Load().Name)
	}
	r.ports[k] = s
	s.held[k] = true
	r.mu.Unlock()

	e := &exposure{s: s, name: w.Name, proto: w.Proto, port: w.RemotePort, end: make(chan struct{})}
	addr := net.JoinHostPort(r.cfg.Load().Bind, fmt.Sprint(w.RemotePort))
	var err error
	if w.Proto == protocol.ProtoTCP {
		if e.ln, err = net.Listen("tcp", addr); err == nil {
			if e.unwatch, err = r.acceptor.add(e.ln.(*net.TCPListener), e.acceptConn); err != nil {
				e.ln.Close()
			}
		}
	} else {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", addr); err == nil {
			e.udp = pc.(*net.UDPConn)
			_ = e.udp.SetReadBuffer(1 << 20) // absorb client bursts
		}
	}
	if err != nil {
		r.mu.Lock()
		delete(r.ports, k)
		delete(s.held, k)
		r.mu.Unlock()
		status := protocol.StatusError
		if errors.Is(err, syscall.EADDRINUSE) {
			status = protocol.StatusPortInUse
		}
		return nil, status, fmt.Errorf("listen %s %s: %w", w.Proto, addr, err)
	}
	if e.ln == nil {
		e.fl = newFlowTable(e)
		e.wg.Go(e.fl.readLoop)
		e.wg.Go(e.fl.expireLoop)
	}
	return e, protocol.StatusOK, nil
}

// close stops accepting and frees the port; connections already spliced
// finish on their own (or when the session's smux closes).
func (e *exposure) close() {
	close(e.end)
	if e.ln != nil {
		e.unwatch() // no acceptConn after this
		e.ln.Close()
	}
	if e.udp != nil {
		e.udp.Close()
		e.fl.closeAll()
	}
	e.wg.Wait()
	r := e.s.r
	r.mu.Lock()
	if k := (portKey{e.proto, e.port}); r.ports[k] == e.s {
		delete(r.ports, k)
		delete(e.s.held, k)
	}
	r.mu.Unlock()
}

// acceptConn takes a connection the relay's acceptor accepted on e's
// port (on the acceptor's goroutine: it only starts the connection's).
func (e *exposure) acceptConn(c net.Conn) {
	select {
	case <-e.end:
		c.Close()
	default:
		e.s.r.sessions.Go(func() { e.serveTCP(c) })
	}
}

func (e *exposure) serveTCP(c net.Conn) {
	client := addrPortOf(c.RemoteAddr())
	st, err := e.s.link.OpenStream()
	if err != nil {
		c.Close()
		return
	}
	hdr := protocol.AppendStreamHeader(nil, protocol.StreamHeader{Proto: protocol.ProtoTCP, Exposure: e.name,
		Client: client, Server: addrPortOf(c.LocalAddr())})
	if _, err := st.Write(hdr); err != nil {
		st.Close()
		c.Close()
		return
	}
	e.s.log.Debug("tcp connection", "exposure", e.name, "client", client)
	e.s.tunnels.Splice(c, st, 0, &e.s.r.sessions, func(res splice.Result) {
		if res.Aborted() {
			e.s.log.Debug("tcp connection aborted", "exposure", e.name, "client", client, "err", res.Err)
		}
	})
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
