package demux

import (
	"net"
	"net/netip"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/udpio"
	"github.com/pinhole/pinhole/protocol"
)

// Attach routes the Data datagrams that name index to pc (decrypted on its
// own reader, see link.PacketConn) and every other datagram naming index
// (handshake answers, cookies, refusals) to other, which may be nil. It
// replaces a previous owner of index.
func (s *Socket) Attach(index uint32, pc *link.PacketConn, other Handler) {
	s.Register(index, func(t protocol.Type, b []byte, from netip.AddrPort) {
		if t == protocol.TypeData {
			pc.Deliver(b, from)
		} else if other != nil {
			other(t, b, from)
		}
	})
}

// SetUnsolicited installs the handler for datagrams that name no session
// of ours: a peer's handshake initiation (nil drops and counts them).
func (s *Socket) SetUnsolicited(h Handler) {
	s.mu.Lock()
	s.unsolicited = h
	s.mu.Unlock()
}

// Adopted is an extra socket whose datagrams join the shared dispatch:
// the socket that won birthday probing toward a peer, whose NAT mapping is
// the one that works. Send writes from it; Close stops its reader.
type Adopted struct {
	conn *udpio.Conn
	done chan struct{}
}

// Adopt starts routing pc's datagrams like the main socket's; pc belongs
// to the Adopted from now on.
func (s *Socket) Adopt(pc net.PacketConn) *Adopted {
	a := &Adopted{conn: udpio.New(pc), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.conn.ReadLoop(s.dispatch)
	}()
	return a
}

// Send writes one datagram to addr from the adopted socket.
func (a *Adopted) Send(b []byte, addr netip.AddrPort) error { return a.conn.Send(b, addr) }

// LocalAddr returns the adopted socket's address.
func (a *Adopted) LocalAddr() netip.AddrPort {
	if ua, ok := a.conn.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.conn.LocalAddr().String())
	return ap
}

// Close closes the adopted socket and waits for its reader.
func (a *Adopted) Close() error {
	err := a.conn.Close()
	<-a.done
	return err
}
