package agent

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"golang.org/x/sys/unix"
)

// TCP simultaneous open (the seed's TCP hole punching): when a site blocks
// UDP but lets TCP out, both agents connect at the same moment from a
// fixed local port (the number of their UDP socket's port, with
// SO_REUSEADDR and SO_REUSEPORT) to the other's public IP and that port.
// Each SYN leaves a conntrack entry in its own NAT, so the other side's SYN
// (or the retransmission after a first one was dropped) is let in, and
// both connects complete into one connection. NATs that keep the source
// port of TCP flows (Linux masquerade does when it can) make the port
// predictable; one that randomises it (symmetric) cannot be met.
//
// The connection then carries the session's sealed datagrams, each with a
// 2-byte length, as one more direct path: path validation, fallback and
// status work as for UDP. KCP on top of TCP retransmits twice in theory,
// but on a direct path between two routers the TCP layer rarely has to.
// The path is named by the peer's address in IPv4-mapped IPv6 form, so it
// never equals a UDP candidate (tcpPathAddr).

const (
	// tcpPunchTries connects are made per round, each given tcpPunchWait:
	// a first SYN dropped by the other NAT is retransmitted by the kernel
	// after a second, by then the other side's SYN opened the way.
	tcpPunchTries = 3
	tcpPunchWait  = 1500 * time.Millisecond
	// tcpQueue bounds the datagrams waiting for the TCP path's writer: KCP
	// must never block on a slow TCP send (it retransmits what is dropped).
	tcpQueue = 512
)

// tcpPathAddr names the TCP path to ip:port (see above).
func tcpPathAddr(ip netip.Addr, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(ip.Unmap().As16()), port)
}

// isTCPPath reports whether addr names a TCP path.
func isTCPPath(addr netip.AddrPort) bool { return addr.Addr().Is4In6() }

// tcpPath is a punched TCP connection carrying the session's datagrams.
type tcpPath struct {
	conn net.Conn
	addr netip.AddrPort // tcpPathAddr of the peer
	out  chan []byte
	once sync.Once
}

// reuseControl sets SO_REUSEADDR and SO_REUSEPORT, so the punch port can
// be bound again at once and beside another socket on it.
func reuseControl(_, _ string, c syscall.RawConn) error {
	var err error
	c.Control(func(fd uintptr) {
		if err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err == nil {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	return err
}

// tcpTarget is the peer's public IP and the port it punches from (its UDP
// socket's port number: its LAN candidate's port, else its reflexive one).
func (s *peerSession) tcpTarget() (netip.AddrPort, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cands) == 0 || !s.cands[0].Addr().IsValid() {
		return netip.AddrPort{}, false
	}
	port := s.cands[0].Port()
	for _, c := range s.cands[1:] {
		if c.Addr().IsPrivate() || c.Addr().IsLoopback() || c.Addr() == s.cands[0].Addr() {
			port = c.Port()
			break
		}
	}
	return netip.AddrPortFrom(s.cands[0].Addr(), port), port != 0
}

// punchTCP tries a simultaneous open; on success the connection becomes a
// direct path candidate and is probed at once.
func (s *peerSession) punchTCP() {
	target, ok := s.tcpTarget()
	if !ok || s.hasTCP() {
		return
	}
	local := &net.TCPAddr{Port: int(s.m.a.sock.LocalAddr().Port())}
	d := net.Dialer{LocalAddr: local, Control: reuseControl, Timeout: tcpPunchWait}
	var err error
	for range tcpPunchTries {
		ctx, cancel := context.WithTimeout(s.ctx, tcpPunchWait)
		var c net.Conn
		c, err = d.DialContext(ctx, "tcp4", target.String())
		cancel()
		if err == nil {
			s.useTCP(c, target)
			return
		}
		if s.ctx.Err() != nil || s.directNow() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.log.Info("peer tcp simultaneous open failed", "target", target, "local_port", local.Port, "err", err)
}

func (s *peerSession) hasTCP() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcp != nil
}

// useTCP starts carrying datagrams on c and validates it as a path.
func (s *peerSession) useTCP(c net.Conn, target netip.AddrPort) {
	p := &tcpPath{conn: c, addr: tcpPathAddr(target.Addr(), target.Port()), out: make(chan []byte, tcpQueue)}
	s.mu.Lock()
	if s.tcp != nil || s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.tcp = p
	s.mu.Unlock()
	if t, ok := c.(*net.TCPConn); ok {
		t.SetNoDelay(true)
	}
	s.log.Info("peer tcp simultaneous open connected", "addr", target)
	s.wg.Go(func() { s.readTCP(p) })
	s.wg.Go(func() { s.writeTCP(p) })
	s.pc.Probe(p.addr)
}

// readTCP hands each framed datagram to the session's conn.
func (s *peerSession) readTCP(p *tcpPath) {
	defer s.dropTCP(p)
	var hdr [2]byte
	buf := make([]byte, protocol.MaxDatagram+64)
	for {
		if _, err := io.ReadFull(p.conn, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n > len(buf) {
			return // not ours: a peer never sends more
		}
		if _, err := io.ReadFull(p.conn, buf[:n]); err != nil {
			return
		}
		s.pc.Deliver(buf[:n], p.addr)
	}
}

// writeTCP sends queued datagrams until the path is dropped.
func (s *peerSession) writeTCP(p *tcpPath) {
	defer s.dropTCP(p)
	for {
		select {
		case <-s.ctx.Done():
			return
		case b, ok := <-p.out:
			if !ok {
				return
			}
			p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := p.conn.Write(b); err != nil {
				return
			}
		}
	}
}

// sendTCP queues a datagram for the TCP path (dropped when the queue is
// full: KCP retransmits).
func (s *peerSession) sendTCP(b []byte) error {
	s.mu.Lock()
	p := s.tcp
	s.mu.Unlock()
	if p == nil {
		return net.ErrClosed
	}
	f := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(f, uint16(len(b)))
	copy(f[2:], b)
	select {
	case p.out <- f:
	default:
	}
	return nil
}

// dropTCP ends the TCP path; the watch loop falls back to the relay.
func (s *peerSession) dropTCP(p *tcpPath) {
	p.once.Do(func() {
		p.conn.Close()
		s.mu.Lock()
		if s.tcp == p {
			s.tcp = nil
		}
		s.mu.Unlock()
	})
}

// shownAddr is a path's address as status and logs show it (a TCP path
// without its IPv4-mapped form).
func shownAddr(a netip.AddrPort) string {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()).String()
}
