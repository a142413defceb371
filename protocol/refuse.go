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
)

func (c RefuseCode) String() string {
	switch c {
	case RefuseVersion:
		return "unsupported version"
	case RefuseUnknownSession:
		return "unknown session"
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
// from the handshake itself.
type HandshakePayload struct {
	Observed netip.AddrPort
}

// Append appends the payload.
func (p HandshakePayload) Append(b []byte) []byte { return appendAddrPort(b, p.Observed) }

// ParseHandshakePayload decodes the payload.
func ParseHandshakePayload(b []byte) (HandshakePayload, error) {
	r := &reader{b: b}
	p := HandshakePayload{Observed: r.addrPort()}
	return p, r.done()
}
