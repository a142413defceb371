package protocol

import (
	"encoding/binary"
	"net/netip"
)

// Heartbeat is the body of Ping and Pong. Seq pairs an answer with its
// question; SentNanos is the sender's monotonic clock, echoed back so the
// sender measures the round trip without trusting the peer's clock.
// Observed, in a Pong from the relay, is the agent's address as the relay
// sees it: the reflexive address, whose change reveals a NAT rebinding.
type Heartbeat struct {
	Seq       uint32
	SentNanos int64
	Observed  netip.AddrPort
}

// Ping asks for a Pong; either end may send it.
type Ping Heartbeat

// Pong answers a Ping with the same Seq and SentNanos.
type Pong Heartbeat

func (Ping) Type() MsgType            { return MsgPing }
func (Pong) Type() MsgType            { return MsgPong }
func (m Ping) Append(b []byte) []byte { return Heartbeat(m).append(b) }
func (m Pong) Append(b []byte) []byte { return Heartbeat(m).append(b) }

func (h Heartbeat) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, h.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(h.SentNanos))
	return appendAddrPort(b, h.Observed)
}

func parseHeartbeat(r *reader) Heartbeat {
	return Heartbeat{Seq: r.u32(), SentNanos: int64(r.u64()), Observed: r.addrPort()}
}
