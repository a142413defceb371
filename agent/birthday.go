package agent

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

// Birthday probing: a NAT that maps each destination to a new random port
// (random symmetric) cannot be predicted, but it can be met. The side
// behind it opens birthdaySockets short-lived sockets toward the peer's
// endpoint-independent mapping (each makes one random mapping on its
// NAT); the peer probes birthdaySpray random ports of our public address.
// Each spray probe hits one of our mappings with probability
// birthdaySockets/64512, so a round of 256 x 1024 succeeds with about
// 98% (256 x 256: 63%). The probe that gets through opens the peer's own
// filter for that mapping, the socket that received it answers, and that
// socket becomes the session's direct path (sendDirect); the others close.
const (
	birthdaySockets = 256
	birthdaySpray   = 1024
	// sprayPerTick probes go out per punchEvery: 1024 in about 2 s, a
	// burst of roughly 35 kB/s that a router uplink carries easily.
	sprayPerTick = 100
	// birthdayResend: each socket probes again this often in a round.
	birthdayResend = time.Second
)

// birthdaySet is the sockets of one birthday round (the opening side).
type birthdaySet struct {
	s     *peerSession
	mu    sync.Mutex
	socks []net.PacketConn
	done  chan struct{}
	wg    sync.WaitGroup
}

// openBirthday opens the round's sockets and starts reading them.
func (s *peerSession) openBirthday() *birthdaySet {
	a := s.m.a
	listen := a.probeListener(a.cfg.Load(), a.sock.LocalAddr())
	b := &birthdaySet{s: s, done: make(chan struct{})}
	for range birthdaySockets {
		c, err := listen()
		if err != nil {
			break // out of sockets: probe with what we have
		}
		b.socks = append(b.socks, c)
		b.wg.Go(func() { b.read(c) })
	}
	return b
}

// read hands the session's datagrams that arrive on c to its conn, and
// remembers that replies to their source go out through c.
func (b *birthdaySet) read(c net.PacketConn) {
	buf := make([]byte, protocol.MaxDatagram+64)
	s := b.s
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		ap := addrOf(from)
		idx, ok := protocol.ReceiverIndex(protocol.TypeData, buf[:n])
		if !ok || n < protocol.DataHeaderLen || protocol.Type(buf[0]) != protocol.TypeData || idx != s.localIndex() {
			continue
		}
		s.setVia(ap.Addr().Unmap(), ap.Port(), c)
		s.pc.Deliver(buf[:n], netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
}

// probe sends one challenge to target from every socket of the round.
func (b *birthdaySet) probe(target netip.AddrPort) {
	b.mu.Lock()
	socks := append([]net.PacketConn(nil), b.socks...)
	b.mu.Unlock()
	for _, c := range socks {
		b.s.pc.ProbeFrom(target, func(pkt []byte, to netip.AddrPort) error {
			_, err := c.WriteTo(pkt, net.UDPAddrFromAddrPort(to))
			return err
		})
	}
}

// finish closes every socket but the one the direct path uses (if any),
// which stays open, read, for the session's life.
func (b *birthdaySet) finish() {
	keep := b.s.viaFor(b.s.directAddr())
	b.mu.Lock()
	for _, c := range b.socks {
		if c != keep {
			c.Close()
		}
	}
	b.socks = nil
	b.mu.Unlock()
	b.s.dropViaExcept(keep)
	if keep != nil {
		b.s.keepSocket(keep)
	}
}

// spray probes n random ports of ip (the sprayed side).
func (s *peerSession) spray(ip netip.Addr, n int) {
	var r [2]byte
	for range n {
		rand.Read(r[:])
		port := 1024 + int(binary.BigEndian.Uint16(r[:]))%(65536-1024)
		s.pc.Probe(netip.AddrPortFrom(ip, uint16(port)))
	}
}

// sendDirect sends a datagram of the session toward addr: from the socket
// that addr last reached us on (a birthday socket), else the agent's one.
func (s *peerSession) sendDirect(b []byte, addr netip.AddrPort) error {
	if isTCPPath(addr) {
		return s.sendTCP(b)
	}
	if c := s.viaFor(addr); c != nil {
		_, err := c.WriteTo(b, net.UDPAddrFromAddrPort(addr))
		return err
	}
	return s.m.a.sock.Send(b, addr)
}

func (s *peerSession) setVia(ip netip.Addr, port uint16, c net.PacketConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.via == nil {
		s.via = map[netip.AddrPort]net.PacketConn{}
	}
	if len(s.via) < 64 {
		s.via[netip.AddrPortFrom(ip, port)] = c
	}
}

func (s *peerSession) viaFor(addr netip.AddrPort) net.PacketConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.via[addr]
}

func (s *peerSession) dropViaExcept(keep net.PacketConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, c := range s.via {
		if c != keep {
			delete(s.via, a)
		}
	}
}

// keepSocket records a birthday socket that carries the direct path; it
// closes with the session.
func (s *peerSession) keepSocket(c net.PacketConn) {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.kept = append(s.kept, c)
	}
	s.mu.Unlock()
	if closed {
		c.Close()
	}
}

func (s *peerSession) localIndex() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.localIdx
}

func (s *peerSession) directAddr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path.direct
}
