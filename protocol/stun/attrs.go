package stun

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// AttrType is an attribute type (RFC 8489 §14, registry in §18.3). Types
// below 0x8000 are comprehension-required: a server that does not know one
// answers 420 (RFC 8489 §6.3.1).
type AttrType uint16

// Attribute types. Address attributes are in address.go's helpers; the RFC
// 3489 ones (§11.2) are only read, since RFC 8489 servers do not send them.
const (
	AttrMappedAddress          AttrType = 0x0001 // RFC 8489 §14.1
	AttrChangeRequest          AttrType = 0x0003 // RFC 5780 §7.2
	AttrSourceAddress          AttrType = 0x0004 // RFC 3489 §11.2.5, read-only
	AttrChangedAddress         AttrType = 0x0005 // RFC 3489 §11.2.3, read-only
	AttrUsername               AttrType = 0x0006 // RFC 8489 §14.3
	AttrMessageIntegrity       AttrType = 0x0008 // RFC 8489 §14.5, kept, not checked
	AttrErrorCode              AttrType = 0x0009 // RFC 8489 §14.8
	AttrUnknownAttributes      AttrType = 0x000A // RFC 8489 §14.13
	AttrRealm                  AttrType = 0x0014 // RFC 8489 §14.9
	AttrNonce                  AttrType = 0x0015 // RFC 8489 §14.10
	AttrMessageIntegritySHA256 AttrType = 0x001C // RFC 8489 §14.6, kept, not checked
	AttrXORMappedAddress       AttrType = 0x0020 // RFC 8489 §14.2
	AttrPadding                AttrType = 0x0026 // RFC 5780 §7.6
	AttrResponsePort           AttrType = 0x0027 // RFC 5780 §7.5
	AttrSoftware               AttrType = 0x8022 // RFC 8489 §14.14
	AttrAlternateServer        AttrType = 0x8023 // RFC 8489 §14.15
	AttrFingerprint            AttrType = 0x8028 // RFC 8489 §14.7
	AttrResponseOrigin         AttrType = 0x802B // RFC 5780 §7.3
	AttrOtherAddress           AttrType = 0x802C // RFC 5780 §7.4

	// AttrPinholeDelay is pinhole's own attribute (private range
	// 0xC000-0xFFFF of RFC 8489 §18.3, comprehension-optional, so any
	// other server ignores it and answers at once): 4 bytes, a delay in
	// milliseconds. A pinhole relay answers a Binding request that
	// carries it after that delay instead of at once, from the socket
	// the request came to, to the request's source only. The agent sends
	// it from a fresh socket and so learns whether the NAT mapping lived
	// that long (RFC 4787 REQ-5 mapping timeouts; see
	// agent/internal/netcheck/lifetime.go).
	AttrPinholeDelay AttrType = 0xC05A
)

func (t AttrType) String() string {
	if s, ok := t.name(); ok {
		return s
	}
	return fmt.Sprintf("attribute %#04x", uint16(t))
}

// name is the type's name in the registry of RFC 8489 §18.3, for the types
// this package knows. (A switch, not a map: a map literal is built at init
// and costs more code.)
func (t AttrType) name() (string, bool) {
	switch t {
	case AttrMappedAddress:
		return "MAPPED-ADDRESS", true
	case AttrChangeRequest:
		return "CHANGE-REQUEST", true
	case AttrSourceAddress:
		return "SOURCE-ADDRESS", true
	case AttrChangedAddress:
		return "CHANGED-ADDRESS", true
	case AttrUsername:
		return "USERNAME", true
	case AttrMessageIntegrity:
		return "MESSAGE-INTEGRITY", true
	case AttrErrorCode:
		return "ERROR-CODE", true
	case AttrUnknownAttributes:
		return "UNKNOWN-ATTRIBUTES", true
	case AttrRealm:
		return "REALM", true
	case AttrNonce:
		return "NONCE", true
	case AttrMessageIntegritySHA256:
		return "MESSAGE-INTEGRITY-SHA256", true
	case AttrXORMappedAddress:
		return "XOR-MAPPED-ADDRESS", true
	case AttrPadding:
		return "PADDING", true
	case AttrResponsePort:
		return "RESPONSE-PORT", true
	case AttrSoftware:
		return "SOFTWARE", true
	case AttrAlternateServer:
		return "ALTERNATE-SERVER", true
	case AttrFingerprint:
		return "FINGERPRINT", true
	case AttrResponseOrigin:
		return "RESPONSE-ORIGIN", true
	case AttrOtherAddress:
		return "OTHER-ADDRESS", true
	case AttrPinholeDelay:
		return "PINHOLE-DELAY", true
	}
	return "", false
}

// Required reports a comprehension-required type (0x0000-0x7FFF, RFC 8489
// §14).
func (t AttrType) Required() bool { return t < 0x8000 }

// ChangeRequest holds the CHANGE-REQUEST flags (RFC 5780 §7.2): answer from
// the server's other IP, its other port, or both.
type ChangeRequest uint32

// CHANGE-REQUEST flags: A (change IP) and B (change port), RFC 5780 §7.2.
const (
	ChangeIP   ChangeRequest = 0x4
	ChangePort ChangeRequest = 0x2
)

// ChangeRequest returns CHANGE-REQUEST, all 32 bits as sent.
func (m *Message) ChangeRequest() (ChangeRequest, error) {
	v, err := m.fixed(AttrChangeRequest, 4)
	if err != nil {
		return 0, err
	}
	return ChangeRequest(binary.BigEndian.Uint32(v)), nil
}

// AddChangeRequest appends CHANGE-REQUEST.
func (m *Message) AddChangeRequest(c ChangeRequest) {
	m.Add(AttrChangeRequest, binary.BigEndian.AppendUint32(nil, uint32(c)))
}

// Delay returns PINHOLE-DELAY (see AttrPinholeDelay).
func (m *Message) Delay() (time.Duration, error) {
	v, err := m.fixed(AttrPinholeDelay, 4)
	if err != nil {
		return 0, err
	}
	return time.Duration(binary.BigEndian.Uint32(v)) * time.Millisecond, nil
}

// AddDelay appends PINHOLE-DELAY, d in whole milliseconds (at most about
// 49 days; longer is cut to that).
func (m *Message) AddDelay(d time.Duration) {
	ms := min(max(d.Milliseconds(), 0), 1<<32-1)
	m.Add(AttrPinholeDelay, binary.BigEndian.AppendUint32(nil, uint32(ms)))
}

// ResponsePort returns RESPONSE-PORT: the port a Binding response should go
// to instead of the request's source port (RFC 5780 §7.5).
func (m *Message) ResponsePort() (uint16, error) {
	v, err := m.fixed(AttrResponsePort, 4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(v), nil
}

// AddResponsePort appends RESPONSE-PORT (port, then 16 bits of padding).
func (m *Message) AddResponsePort(port uint16) {
	m.Add(AttrResponsePort, []byte{byte(port >> 8), byte(port), 0, 0})
}

// Padding returns the length of PADDING, a multiple of 4 (RFC 5780 §7.6).
// A client pads a request to learn whether large, fragmented responses
// reach it; the server pads its response to the same size.
func (m *Message) Padding() (int, error) {
	v, err := m.value(AttrPadding)
	if err != nil {
		return 0, err
	}
	if len(v)%4 != 0 {
		return 0, fmt.Errorf("%v length %d: %w", AttrPadding, len(v), ErrMalformed)
	}
	return len(v), nil
}

// AddPadding appends PADDING of n zero bytes rounded up to a multiple of 4.
func (m *Message) AddPadding(n int) {
	m.Add(AttrPadding, make([]byte, padded(max(n, 0))))
}

// maxText bounds SOFTWARE and the ERROR-CODE reason when decoding: fewer
// than 128 characters, at most 763 bytes (RFC 8489 §14.8, §14.14).
const (
	maxTextRunes = 127
	maxTextBytes = 763
)

// Software returns SOFTWARE, the sender's name and version (RFC 8489
// §14.14).
func (m *Message) Software() (string, error) {
	v, err := m.value(AttrSoftware)
	if err != nil {
		return "", err
	}
	return text(AttrSoftware, v)
}

// AddSoftware appends SOFTWARE, cut to 127 characters.
func (m *Message) AddSoftware(s string) {
	m.Add(AttrSoftware, []byte(clip(s)))
}

// ErrorCode is the ERROR-CODE attribute of an error response (RFC 8489
// §14.8). It is an error, so a client can return it as is.
type ErrorCode struct {
	Code   int // 300-699: class*100 + number
	Reason string
}

// Error codes of RFC 8489 §14.8 (and 420's list, §14.13).
const (
	CodeTryAlternate     = 300
	CodeBadRequest       = 400
	CodeUnauthenticated  = 401
	CodeUnknownAttribute = 420
	CodeStaleNonce       = 438
	// CodeInsufficientCapacity (RFC 8656 §18, TURN) is how a pinhole relay
	// refuses a PINHOLE-DELAY request when too many delayed answers wait.
	CodeInsufficientCapacity = 508
	CodeServerError          = 500
)

func (e ErrorCode) Error() string { return fmt.Sprintf("STUN error %d %s", e.Code, e.Reason) }

// ErrorCode returns ERROR-CODE. The class must be 3-6 and the number below
// 100; the 21 reserved bits are ignored (RFC 8489 §14.8).
func (m *Message) ErrorCode() (ErrorCode, error) {
	v, err := m.value(AttrErrorCode)
	if err != nil {
		return ErrorCode{}, err
	}
	if len(v) < 4 || v[2]&7 < 3 || v[2]&7 > 6 || v[3] > 99 {
		return ErrorCode{}, fmt.Errorf("%v %x: %w", AttrErrorCode, v[:min(len(v), 4)], ErrMalformed)
	}
	reason, err := text(AttrErrorCode, v[4:])
	if err != nil {
		return ErrorCode{}, err
	}
	return ErrorCode{Code: int(v[2]&7)*100 + int(v[3]), Reason: reason}, nil
}

// AddErrorCode appends ERROR-CODE. A code outside 300-699 is sent as 500.
func (m *Message) AddErrorCode(e ErrorCode) {
	if e.Code < 300 || e.Code > 699 {
		e.Code = CodeServerError
	}
	v := []byte{0, 0, byte(e.Code / 100), byte(e.Code % 100)}
	m.Add(AttrErrorCode, append(v, clip(e.Reason)...))
}

// fixed returns the first t attribute, which must be n bytes long.
func (m *Message) fixed(t AttrType, n int) ([]byte, error) {
	v, err := m.value(t)
	if err == nil && len(v) != n {
		err = fmt.Errorf("%v length %d, want %d: %w", t, len(v), n, ErrMalformed)
	}
	return v, err
}

// text decodes a text value no longer than maxTextBytes. It does not
// insist on UTF-8: the text is for logs, and a server that gets it wrong
// still gives a usable answer. Trailing NULs go: coturn 4.6.1 pads its
// reason phrases with NULs and counts them in the length.
func text(t AttrType, v []byte) (string, error) {
	if len(v) > maxTextBytes {
		return "", fmt.Errorf("%v: %d bytes of text: %w", t, len(v), ErrMalformed)
	}
	return strings.TrimRight(string(v), "\x00"), nil
}

// clip cuts s to maxTextRunes characters (RFC 8489 §14.8, §14.14; an
// invalid byte counts as one), which is never more than maxTextBytes.
func clip(s string) string {
	n := 0
	for i := range s {
		if n == maxTextRunes {
			return s[:i]
		}
		n++
	}
	return s
}
