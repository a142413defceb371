package protocol

import (
	"encoding/binary"
	"fmt"
)

// CookieReply (type 0xA5, relay -> agent) answers a handshake initiation
// with a cookie instead of a session: the relay wants proof that the agent
// receives at its source address (it is under load from that address), or
// proof that the initiation is fresh (its timestamp is not newer than the
// last confirmed one, or unconfirmed sessions of that key are queued). The
// agent puts the cookie into its next initiation (see protocol/secure).
//
//	0      1       2    4               8                      32          64
//	| 0xA5 | reason | 0 0 | receiver index | nonce (24)           | sealed cookie (16 + 16) |
//
// The receiver index is the sender index of the initiation it answers.
const (
	CookieHeaderLen = 8
	CookieReplyLen  = CookieHeaderLen + 24 + 16 + 16
)

// CookieReason says why the relay asked for a cookie; the agent shows it.
type CookieReason byte

const (
	// CookieLoad: too many handshakes from the agent's address.
	CookieLoad CookieReason = 1
	// CookieStale: the timestamp is not newer than the last confirmed
	// session of this key (a replay, or an agent whose clock went back).
	CookieStale CookieReason = 2
	// CookieBusy: unconfirmed sessions of this key fill their slots.
	CookieBusy CookieReason = 3
)

func (r CookieReason) String() string {
	switch r {
	case CookieLoad:
		return "relay under load from this address"
	case CookieStale:
		return "handshake timestamp not newer than the last session's (clock behind?)"
	case CookieBusy:
		return "unconfirmed sessions of this key pending"
	}
	return fmt.Sprintf("cookie-reason(%d)", byte(r))
}

// CookieHeader is the clear part of a CookieReply.
type CookieHeader struct {
	Reason   CookieReason
	Receiver uint32
}

// AppendCookieHeader appends the 8-byte header.
func AppendCookieHeader(b []byte, h CookieHeader) []byte {
	b = append(b, byte(TypeCookie), byte(h.Reason), 0, 0)
	return binary.BigEndian.AppendUint32(b, h.Receiver)
}

// ParseCookieHeader decodes the header of a CookieReply of the right size.
func ParseCookieHeader(b []byte) (CookieHeader, error) {
	if len(b) != CookieReplyLen {
		return CookieHeader{}, ErrShort
	}
	if Type(b[0]) != TypeCookie {
		return CookieHeader{}, ErrNotPinhole
	}
	return CookieHeader{Reason: CookieReason(b[1]), Receiver: binary.BigEndian.Uint32(b[4:8])}, nil
}
