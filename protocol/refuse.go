package protocol

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// RefuseCode says why the relay refused a datagram.
type RefuseCode byte

const (
	// RefuseVersion: the handshake's version is not spoken here; the
	// Refuse carries the version that is.
	RefuseVersion RefuseCode = 1
	// RefuseUnknownSession: a Data datagram named a session the relay does
	// not have (it restarted, or expired the agent). The agent should
	// handshake again now instead of waiting for heartbeats to time out.
	RefuseUnknownSession RefuseCode = 2
	// RefuseUnknownKey: the handshake authenticated a static key the relay
	// does not list. Only the holder of that key can make such a handshake,
	// so the answer tells the agent nothing it may not know; it lets the
	// agent say "not listed on the relay" instead of guessing.
	RefuseUnknownKey RefuseCode = 3
)

func (c RefuseCode) String() string {
	switch c {
	case RefuseVersion:
		return "unsupported version"
	case RefuseUnknownSession:
		return "unknown session"
	case RefuseUnknownKey:
		return "agent key not listed on the relay"
	}
	return fmt.Sprintf("refuse(%d)", byte(c))
}

// Refuse is an unauthenticated hint. It echoes the receiver index the
// refused datagram carried (or the sender index of a refused handshake), so
// an off-path attacker who cannot see that index cannot forge one that the
// agent acts on.
type Refuse struct {
	Code    RefuseCode
	Version byte   // the version the sender speaks
	Index   uint32 // index from the refused datagram
}

// AppendRefuse appends the 8-byte datagram.
func AppendRefuse(b []byte, r Refuse) []byte {
	b = append(b, byte(TypeRefuse), byte(r.Code), r.Version, 0)
	return binary.BigEndian.AppendUint32(b, r.Index)
}

// ParseRefuse decodes a Refuse datagram.
func ParseRefuse(b []byte) (Refuse, error) {
	if len(b) < RefuseLen {
		return Refuse{}, ErrShort
	}
	if Type(b[0]) != TypeRefuse {
		return Refuse{}, ErrNotPinhole
	}
	return Refuse{Code: RefuseCode(b[1]), Version: b[2], Index: binary.BigEndian.Uint32(b[4:8])}, nil
}

// HandshakePayload is what the relay puts in Noise message 2: the agent's
// address as the relay saw it (its reflexive address, RFC 8489 §14.2's
// XOR-MAPPED-ADDRESS in spirit), so the agent learns its public mapping
// from the handshake itself, and the relay's clock (Unix nanoseconds), so
// an agent whose clock is wrong (a router without a real-time clock, NTP
// blocked) can say by how much.
//
// Caps is what the relay can do (FlagParkable), sent only to an agent
// whose initiation said it can do the same (an older agent's parser
// takes no trailing byte), and absent from an older relay's payload.
type HandshakePayload struct {
	Observed  netip.AddrPort
	TimeNanos int64
	Caps      byte
}

// Append appends the payload.
func (p HandshakePayload) Append(b []byte) []byte {
	b = appendAddrPort(b, p.Observed)
	b = binary.BigEndian.AppendUint64(b, uint64(p.TimeNanos))
	if p.Caps != 0 {
		b = append(b, p.Caps)
	}
	return b
}

// ParseHandshakePayload decodes the payload.
func ParseHandshakePayload(b []byte) (HandshakePayload, error) {
	r := &reader{b: b}
	p := HandshakePayload{Observed: r.addrPort(), TimeNanos: int64(r.u64())}
	if r.err == nil && len(r.b) > 0 {
		p.Caps = r.u8()
	}
	return p, r.done()
}

// ReceiverIndex returns the session index at the receiving end that a
// datagram of type t names: the receiver field of Data, Refuse (which
// echoes the index of the refused packet, i.e. the refuser's peer's),
// HandshakeResp and CookieReply. ok is false for other types and for
// datagrams too short to hold one.
func ReceiverIndex(t Type, b []byte) (idx uint32, ok bool) {
	switch t {
	case TypeData, TypeRefuse, TypeCookie:
		if len(b) >= 8 {
			return binary.BigEndian.Uint32(b[4:8]), true
		}
	case TypeHandshakeResp:
		if len(b) >= HandshakeHeaderLen+4 {
			return binary.BigEndian.Uint32(b[HandshakeHeaderLen:]), true
		}
	}
	return 0, false
}
