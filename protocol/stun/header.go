package stun

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// Spec constants of the header (RFC 8489 §5).
const (
	// MagicCookie is the fixed value of bytes 4-7. RFC 3489 had no cookie
	// there; its presence is what tells STUN from other traffic on a
	// shared port.
	MagicCookie uint32 = 0x2112A442

	// HeaderLen is the fixed header: type, length, cookie, transaction ID.
	HeaderLen = 20

	// maxBody is the most the 16-bit length field can count.
	maxBody = 0xFFFF &^ 3
)

// Method is the 12-bit STUN method (RFC 8489 §5, registry in §18.2).
type Method uint16

// MethodBinding is the only method pinhole uses (RFC 8489 §18.2).
const MethodBinding Method = 0x001

func (m Method) String() string {
	if m == MethodBinding {
		return "binding"
	}
	return fmt.Sprintf("method %#03x", uint16(m))
}

// Class is the two class bits C1 C0 (RFC 8489 §5).
type Class uint8

// Classes (RFC 8489 §5).
const (
	ClassRequest    Class = 0b00
	ClassIndication Class = 0b01
	ClassSuccess    Class = 0b10 // success response
	ClassError      Class = 0b11 // error response
)

func (c Class) String() string {
	switch c {
	case ClassRequest:
		return "request"
	case ClassIndication:
		return "indication"
	case ClassSuccess:
		return "success"
	case ClassError:
		return "error"
	}
	return fmt.Sprintf("class %d", uint8(c))
}

// Type is the 14-bit message type as it appears on the wire. The class bits
// sit between the method bits (RFC 8489 §5, Figure 3):
//
//	bit 13 ........................... 0
//	M11 M10 M9 M8 M7 C1 M6 M5 M4 C0 M3 M2 M1 M0
type Type uint16

// Binding message types (RFC 8489 §5: 0x0001, 0x0101, 0x0111).
const (
	TypeBindingRequest Type = 0x0001
	TypeBindingSuccess Type = 0x0101
	TypeBindingError   Type = 0x0111
)

// NewType interleaves method and class; bits beyond 12 and 2 are dropped.
func NewType(m Method, c Class) Type {
	t := uint16(m)&0x000F | uint16(m)&0x0070<<1 | uint16(m)&0x0F80<<2
	t |= uint16(c)&1<<4 | uint16(c)&2<<7
	return Type(t)
}

// Method extracts M0-M11.
func (t Type) Method() Method {
	return Method(uint16(t)&0x000F | uint16(t)&0x00E0>>1 | uint16(t)&0x3E00>>2)
}

// Class extracts C1 C0.
func (t Type) Class() Class {
	return Class(uint16(t)>>4&1 | uint16(t)>>7&2)
}

func (t Type) String() string {
	return t.Method().String() + " " + t.Class().String()
}

// TxID is the 96-bit transaction ID (RFC 8489 §5). It matches a response
// to its request and keys the XOR of XOR-MAPPED-ADDRESS for IPv6.
type TxID [12]byte

// NewTxID returns a transaction ID from crypto/rand: RFC 8489 §5 requires
// it to be uniformly random, and an off-path attacker who could guess it
// could forge our mapped address.
func NewTxID() TxID {
	var t TxID
	rand.Read(t[:]) // never fails (crypto/rand, Go 1.24)
	return t
}

// Is reports whether b looks like one STUN message: top two bits zero, the
// magic cookie, and a length field that is a multiple of 4 and counts
// exactly the bytes after the header (RFC 8489 §5). It reads the header
// only; Parse checks the attributes.
func Is(b []byte) bool {
	return len(b) >= HeaderLen &&
		b[0]&0xC0 == 0 &&
		binary.BigEndian.Uint32(b[4:8]) == MagicCookie &&
		b[3]&3 == 0 &&
		int(binary.BigEndian.Uint16(b[2:4])) == len(b)-HeaderLen
}

// BindingRequest encodes a Binding request with transaction ID tx, asking
// for change (RFC 5780 §7.2; zero omits CHANGE-REQUEST, which is test I of
// RFC 5780 §4.3). It carries FINGERPRINT (RFC 8489 §7) so that a server
// sharing its port with other protocols, like our relay, can be sure.
func BindingRequest(tx TxID, change ChangeRequest) []byte {
	m := Message{Type: TypeBindingRequest, TxID: tx, Fingerprint: true}
	if change != 0 {
		m.AddChangeRequest(change)
	}
	return Append(make([]byte, 0, HeaderLen+16), m)
}
