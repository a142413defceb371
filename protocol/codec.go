package protocol

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// ErrMalformed reports a control message or header that does not decode.
var ErrMalformed = errors.New("malformed message")

// MaxString bounds every length-prefixed string on the wire (names, text).
const MaxString = 255

// reader decodes a body; the first error sticks and later reads return zero
// values, so a parser reads every field and checks err once.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() { r.err = ErrMalformed; r.b = nil }

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) str() string {
	n := int(r.u8())
	return string(r.take(n))
}

// addrPort reads a family byte (0 none, 4, 6), the address and the port.
func (r *reader) addrPort() netip.AddrPort {
	switch r.u8() {
	case 0:
		return netip.AddrPort{}
	case 4:
		ip := netip.AddrFrom4([4]byte(r.take4()))
		return netip.AddrPortFrom(ip, r.u16())
	case 6:
		b := r.take(16)
		if b == nil {
			return netip.AddrPort{}
		}
		ip := netip.AddrFrom16([16]byte(b))
		return netip.AddrPortFrom(ip, r.u16())
	}
	r.fail()
	return netip.AddrPort{}
}

func (r *reader) take4() []byte {
	if b := r.take(4); b != nil {
		return b
	}
	return make([]byte, 4)
}

// done fails unless the whole body was consumed: trailing bytes mean the
// peer and we disagree about the layout.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail()
	}
	return r.err
}

func appendString(b []byte, s string) []byte {
	if len(s) > MaxString {
		s = s[:MaxString]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	ip := ap.Addr().Unmap()
	switch {
	case !ip.IsValid():
		return append(b, 0)
	case ip.Is4():
		a := ip.As4()
		b = append(b, 4)
		b = append(b, a[:]...)
	default:
		a := ip.As16()
		b = append(b, 6)
		b = append(b, a[:]...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}
