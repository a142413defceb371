package link

import "github.com/pinhole/pinhole/protocol"

// Forwarding (protocol.DataForward): an agent-relay link also carries the
// datagrams of the agent's peer sessions while they have no direct path.
// They are sealed with the link's keys (the relay must know who sent
// them) but travel beside KCP, not inside it: the peer session runs its
// own KCP end to end, and a reliable transport inside another would
// retransmit twice and stall one peer behind the other's losses.

// ForwardHandler takes the payload of a DataForward datagram (pair id and
// peer datagram, see protocol.ParseForward). It must not keep p.
type ForwardHandler func(p []byte)

// SetForwardHandler installs the handler for forwarded datagrams (nil drops them).
func (c *PacketConn) SetForwardHandler(h ForwardHandler) { c.onForward.Store(&h) }

// Forward seals p as a DataForward datagram and sends it to the peer.
func (c *PacketConn) Forward(p []byte) error {
	return c.sealSend(protocol.DataForward, p, *c.peer.Load(), c.send)
}

func (c *PacketConn) forwarded(p []byte) {
	if h := c.onForward.Load(); h != nil && *h != nil {
		(*h)(p)
	}
}

// SetForwardHandler installs the handler for forwarded records.
func (s *Stream) SetForwardHandler(h ForwardHandler) { s.onForward.Store(&h) }

// Forward seals p as one DataForward record.
func (s *Stream) Forward(p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeRecordLocked(protocol.DataForward, p)
}

func (s *Stream) forwarded(p []byte) {
	if h := s.onForward.Load(); h != nil && *h != nil {
		(*h)(p)
	}
}

// Forward sends a peer datagram on the link (either transport).
func (l *Link) Forward(p []byte) error { return l.forward(p) }

// SetForwardHandler installs the handler for peer datagrams the link
// brings (either transport).
func (l *Link) SetForwardHandler(h ForwardHandler) { l.setForward(h) }
