// Package demux owns the agent's one UDP socket. Every user of UDP (the
// relay link, later STUN probes and peer sessions) shares it, so the NAT
// mapping the agent measures is the mapping its traffic actually uses. One
// reader goroutine classifies each datagram by its first byte (STUN by its
// magic cookie, RFC 8489 §6) and hands it to the owner registered for the
// session index it carries; nothing else ever reads the socket.
package demux

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pinhole/pinhole/internal/udpio"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/stun"
)

// Handler receives one datagram. b is only valid during the call; handlers
// must copy what they keep and must not block.
type Handler func(t protocol.Type, b []byte, from netip.AddrPort)

// STUNHandler receives STUN messages (not yet routed by index).
type STUNHandler func(b []byte, from netip.AddrPort)

// Socket is the shared UDP socket.
type Socket struct {
	conn *udpio.Conn

	mu     sync.RWMutex // guards owners, remotes and stun
	owners map[uint32]Handler
	// remotes routes Refuse datagrams, which carry the index the refused
	// packet was sent to: the peer's index, not ours.
	remotes map[uint32]Handler
	stun    STUNHandler
	// unsolicited gets datagrams that name no session of ours: a peer's
	// handshake initiation (peer sessions start unsolicited).
	unsolicited Handler
	// strays gets, per source address, Refuse datagrams that name no
	// session of ours (stray.go).
	strays map[netip.AddrPort]*strayWatch

	// Counters of datagrams that reached no owner.
	Malformed atomic.Uint64 // not STUN and not a pinhole type, or too short
	Unrouted  atomic.Uint64 // no owner for the index it names

	done chan struct{}
}

// ListenFunc opens a UDP socket; it has net.ListenPacket's signature.
type ListenFunc func(network, address string) (net.PacketConn, error)

// Listen opens the socket on port (0: ephemeral). IPv4 is the default:
// routers' uplinks and relays are IPv4 first, and only an AF_INET socket
// gets batched I/O (see package udpio). Set dualStack to reach IPv6 relays.
func Listen(port int, dualStack bool) (*Socket, error) {
	return ListenWith(nil, port, dualStack)
}

// ListenWith is Listen with the socket opened by listen (nil:
// net.ListenPacket); tests pass a simulated network's (internal/netsim).
func ListenWith(listen ListenFunc, port int, dualStack bool) (*Socket, error) {
	network := "udp4"
	if dualStack {
		network = "udp"
	}
	if listen == nil {
		listen = net.ListenPacket
	}
	pc, err := listen(network, ":"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("listen %s :%d: %w", network, port, err)
	}
	if uc, ok := pc.(*net.UDPConn); ok {
		// Room for bursts while KCP's reader catches up; the kernel caps it.
		_ = uc.SetReadBuffer(4 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
	}
	s := &Socket{conn: udpio.New(pc), owners: make(map[uint32]Handler), remotes: make(map[uint32]Handler), done: make(chan struct{})}
	go s.readLoop()
	return s, nil
}

// LocalAddr returns the socket's address.
func (s *Socket) LocalAddr() netip.AddrPort {
	if ua, ok := s.conn.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(s.conn.LocalAddr().String())
	return ap
}

// Register routes datagrams carrying index to h until Unregister.
func (s *Socket) Register(index uint32, h Handler) {
	s.mu.Lock()
	s.owners[index] = h
	s.mu.Unlock()
}

// Unregister stops routing index.
func (s *Socket) Unregister(index uint32) {
	s.mu.Lock()
	delete(s.owners, index)
	s.mu.Unlock()
}

// RegisterRemote routes Refuse datagrams naming the peer's index to h.
func (s *Socket) RegisterRemote(remote uint32, h Handler) {
	s.mu.Lock()
	s.remotes[remote] = h
	s.mu.Unlock()
}

// UnregisterRemote stops routing Refuse datagrams for remote.
func (s *Socket) UnregisterRemote(remote uint32) {
	s.mu.Lock()
	delete(s.remotes, remote)
	s.mu.Unlock()
}

// SetSTUN installs the handler for STUN messages (nil drops them).
func (s *Socket) SetSTUN(h STUNHandler) {
	s.mu.Lock()
	s.stun = h
	s.mu.Unlock()
}

// Send writes one datagram to addr.
func (s *Socket) Send(b []byte, addr netip.AddrPort) error {
	return s.conn.Send(b, addr)
}

// Close closes the socket and waits for the reader to stop.
func (s *Socket) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

func (s *Socket) readLoop() {
	defer close(s.done)
	s.conn.ReadLoop(s.dispatch)
}

func (s *Socket) dispatch(b []byte, from netip.AddrPort) {
	if stun.Is(b) {
		s.mu.RLock()
		h := s.stun
		s.mu.RUnlock()
		if h != nil {
			h(b, from)
		} else {
			s.Unrouted.Add(1)
		}
		return
	}
	t, err := protocol.Classify(b)
	if err != nil {
		s.Malformed.Add(1)
		return
	}
	if t == protocol.TypeHandshakeInit {
		s.mu.RLock()
		h := s.unsolicited
		s.mu.RUnlock()
		if h == nil {
			s.Unrouted.Add(1)
			return
		}
		h(t, b, from)
		return
	}
	idx, ok := protocol.ReceiverIndex(t, b)
	if !ok {
		s.Malformed.Add(1)
		return
	}
	s.mu.RLock()
	h := s.owners[idx]
	var stray *strayWatch
	if t == protocol.TypeRefuse {
		if s.remotes[idx] != nil {
			h = s.remotes[idx]
		}
		stray = s.strays[from]
	}
	s.mu.RUnlock()
	if h == nil {
		s.Unrouted.Add(1)
		if stray != nil {
			stray.h()
		}
		return
	}
	h(t, b, from)
}
