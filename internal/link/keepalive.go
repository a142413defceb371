package link

import (
	"errors"
	"net/netip"

	"github.com/pinhole/pinhole/protocol"
)

// Keepalives (protocol.DataKeepalive, DataKeepaliveAck): on an agent-relay
// link over UDP the agent's heartbeat travels beside KCP, not inside it.
// A Ping in the control stream costs both ends a KCP exchange, wake-ups of
// smux's three goroutines and of the control reader, and a slot of smux's
// 1,024-entry write ring, which stays resident once touched: a relay with
// thousands of idle agents spent most of its idle CPU on Pings, and its
// memory per agent crept up with every beat. A keepalive is one sealed
// datagram each way, opened and answered on the session's receive path.
// Like any authenticated packet it refreshes the NAT mapping and tells
// each end the other is alive; its answer brings back the send time (the
// round trip) and the address the relay saw it come from (a NAT that
// rebound). A relay that does not know the kind authenticates it (the
// agent is alive) and drops it; the agent then keeps its control Pings
// (it switches only once a keepalive has been answered).

// KeepaliveHandler takes an answered keepalive: the send time it carried
// and the address the relay saw it come from.
type KeepaliveHandler func(sent uint64, observed netip.AddrPort)

// errNoDatagrams: a TCP link has no keepalive datagrams (its records
// travel in one TCP connection, whose own keepalive is the control Ping).
var errNoDatagrams = errors.New("link has no datagrams")

// AnswerKeepalives makes c answer keepalives (the relay's end). Answers
// leave through direct when it is not nil: a sender that writes on the
// answering goroutine (udpio.Conn.SendNow), so that a lone answer does not
// wake the shared writer. Call it before c sees traffic.
func (c *PacketConn) AnswerKeepalives(direct Sender) {
	c.answerVia = direct
	if direct == nil {
		c.answerVia = c.send
	}
	c.answerKeepalives.Store(true)
}

// SetKeepaliveHandler installs the handler for answers (the agent's end).
func (c *PacketConn) SetKeepaliveHandler(h KeepaliveHandler) { c.onKeepalive.Store(&h) }

// SendKeepalive sends a keepalive carrying sent to the peer. It is not
// traffic for the owner's heartbeat (activity.go): it is the heartbeat.
func (c *PacketConn) SendKeepalive(sent uint64) error {
	var b [protocol.KeepaliveLen]byte
	return c.sealSend(protocol.DataKeepalive, protocol.AppendKeepalive(b[:0], sent), *c.peer.Load(), c.send)
}

// keepalive answers one to where it came from (a NAT that rebound gets
// its answer at the new address, as a path challenge does); a new source
// is validated as a KCP packet from there would be.
func (c *PacketConn) keepalive(p []byte, from netip.AddrPort) {
	sent, err := protocol.ParseKeepalive(p)
	if err != nil || !c.answerKeepalives.Load() || !from.IsValid() {
		return
	}
	c.maybeValidate(from)
	var b [protocol.KeepaliveLen]byte
	c.sealSend(protocol.DataKeepaliveAck, protocol.AppendKeepaliveAck(b[:0], sent, from), from, c.answerVia)
}

func (c *PacketConn) keepaliveAck(p []byte) {
	sent, observed, err := protocol.ParseKeepaliveAck(p)
	if h := c.onKeepalive.Load(); err == nil && h != nil && *h != nil {
		(*h)(sent, observed)
	}
}

// SendKeepalive sends a keepalive datagram on a UDP link.
func (l *Link) SendKeepalive(sent uint64) error {
	if l.pc == nil {
		return errNoDatagrams
	}
	return l.pc.SendKeepalive(sent)
}

// SetKeepaliveHandler installs h for answered keepalives (UDP links).
func (l *Link) SetKeepaliveHandler(h KeepaliveHandler) {
	if l.pc != nil {
		l.pc.SetKeepaliveHandler(h)
	}
}
