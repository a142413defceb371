package stun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Errors callers test with errors.Is.
var (
	// ErrNotSTUN: the header is not STUN (short, top bits set, no magic
	// cookie). On a shared port such a datagram belongs to someone else.
	ErrNotSTUN = errors.New("not a STUN message")
	// ErrMalformed: a STUN header whose length or attributes do not decode.
	ErrMalformed = errors.New("malformed STUN message")
	// ErrFingerprint: FINGERPRINT does not match the message (RFC 8489 §7).
	ErrFingerprint = errors.New("STUN fingerprint mismatch")
	// ErrNoAttr: the message lacks the attribute a getter asked for.
	ErrNoAttr = errors.New("STUN attribute not present")
)

// fingerprintXOR is XORed into the CRC-32 of FINGERPRINT so that the CRC of
// an application packet that happens to carry one does not look like STUN
// (RFC 8489 §14.7: 0x5354554e, "STUN").
const fingerprintXOR uint32 = 0x5354554e

// Attr is one attribute. Value excludes the padding.
type Attr struct {
	Type  AttrType
	Value []byte
}

// Message is a decoded STUN message.
//
// Attrs keeps every attribute in wire order except FINGERPRINT, which
// depends on the encoding; Fingerprint records that Parse found a valid one,
// and makes Append compute a new one. Attrs must not hold FINGERPRINT. Attributes that protect the bytes
// before them (MESSAGE-INTEGRITY, RFC 8489 §14.5) are kept but not checked.
type Message struct {
	Type        Type
	TxID        TxID
	Attrs       []Attr
	Fingerprint bool
}

// Parse decodes one message. It refuses anything that is not exactly one
// STUN message: bad header, length that disagrees with len(b) or is not a
// multiple of 4, an attribute that overruns the message, and a FINGERPRINT
// that is not last or does not match. Attribute values alias b.
func Parse(b []byte) (Message, error) {
	if len(b) < HeaderLen || b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != MagicCookie {
		return Message{}, ErrNotSTUN
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n%4 != 0 || HeaderLen+n != len(b) {
		return Message{}, fmt.Errorf("length field %d for %d bytes: %w", n, len(b), ErrMalformed)
	}
	m := Message{Type: Type(binary.BigEndian.Uint16(b[0:2])), TxID: TxID(b[8:20])}
	for off := HeaderLen; off < len(b); {
		// off and len(b) are multiples of 4, so a 4-byte TLV header fits.
		t := AttrType(binary.BigEndian.Uint16(b[off:]))
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		start, end := off+4, off+4+padded(l)
		if end > len(b) {
			return Message{}, fmt.Errorf("%v length %d at offset %d overruns %d bytes: %w", t, l, off, len(b), ErrMalformed)
		}
		if t == AttrFingerprint {
			if end != len(b) {
				return Message{}, fmt.Errorf("%v at offset %d is not last: %w", t, off, ErrMalformed)
			}
			if l != 4 {
				return Message{}, fmt.Errorf("%v length %d: %w", t, l, ErrMalformed)
			}
			if got, want := binary.BigEndian.Uint32(b[start:]), fingerprint(b[:off]); got != want {
				return Message{}, fmt.Errorf("got %08x, want %08x: %w", got, want, ErrFingerprint)
			}
			m.Fingerprint = true
			break
		}
		// A full slice expression, so appending to a value cannot
		// overwrite the next attribute in b.
		m.Attrs = append(m.Attrs, Attr{Type: t, Value: b[start : start+l : start+l]})
		off = end
	}
	return m, nil
}

// Append encodes m after b: header, Attrs in order with zero padding, then
// FINGERPRINT if m.Fingerprint. A message whose body exceeds the 16-bit
// length field (65532 bytes) is a programming error and panics; nothing
// pinhole sends comes close.
func Append(b []byte, m Message) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, uint16(m.Type)&0x3FFF)
	b = append(b, 0, 0) // length, set below
	b = binary.BigEndian.AppendUint32(b, MagicCookie)
	b = append(b, m.TxID[:]...)
	for _, a := range m.Attrs {
		b = appendAttr(b, a.Type, a.Value)
	}
	if m.Fingerprint {
		b = appendFingerprint(b, start)
	}
	setLength(b[start:])
	return b
}

// Get returns the value of the first attribute of type t. Only the first
// counts when a type repeats (RFC 8489 §14).
func (m *Message) Get(t AttrType) ([]byte, bool) {
	for _, a := range m.Attrs {
		if a.Type == t {
			return a.Value, true
		}
	}
	return nil, false
}

// Add appends an attribute with value v (not copied).
func (m *Message) Add(t AttrType, v []byte) {
	m.Attrs = append(m.Attrs, Attr{Type: t, Value: v})
}

// value returns the first t attribute or ErrNoAttr.
func (m *Message) value(t AttrType) ([]byte, error) {
	v, ok := m.Get(t)
	if !ok {
		return nil, fmt.Errorf("%v: %w", t, ErrNoAttr)
	}
	return v, nil
}

func padded(n int) int { return (n + 3) &^ 3 }

func appendAttr(b []byte, t AttrType, v []byte) []byte {
	if len(v) > maxBody {
		panic(fmt.Sprintf("stun: %v value of %d bytes does not fit a message", t, len(v)))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(t))
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	var zero [3]byte
	return append(b, zero[:padded(len(v))-len(v)]...)
}

// setLength writes the body length into the header of msg.
func setLength(msg []byte) {
	n := len(msg) - HeaderLen
	if n > maxBody {
		panic(fmt.Sprintf("stun: message body of %d bytes exceeds %d", n, maxBody))
	}
	binary.BigEndian.PutUint16(msg[2:4], uint16(n))
}

// appendFingerprint adds FINGERPRINT to the message starting at b[start]:
// the CRC covers the header with a length that already counts FINGERPRINT
// itself, and every attribute before it (RFC 8489 §14.7).
func appendFingerprint(b []byte, start int) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(AttrFingerprint))
	b = binary.BigEndian.AppendUint16(b, 4)
	n := len(b) + 4 - start - HeaderLen // the length once the CRC is in
	if n > maxBody {
		panic(fmt.Sprintf("stun: message body of %d bytes exceeds %d", n, maxBody))
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	crc := fingerprint(b[start : len(b)-4])
	return binary.BigEndian.AppendUint32(b, crc)
}

func fingerprint(b []byte) uint32 {
	return crc32.ChecksumIEEE(b) ^ fingerprintXOR
}
