package stun

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Address families of the address attributes (RFC 8489 §14.1).
const (
	familyIPv4 = 0x01
	familyIPv6 = 0x02
)

// An address attribute is a reserved byte, the family, the port and 4 or
// 16 bytes of address (RFC 8489 §14.1; RFC 5780 §7.1 and RFC 3489 §11.2.1
// use the same layout).
const (
	addrLenIPv4 = 4 + 4
	addrLenIPv6 = 4 + 16
)

// MappedAddress returns MAPPED-ADDRESS (RFC 8489 §14.1), which RFC 3489
// servers send instead of XOR-MAPPED-ADDRESS. Prefer XORMappedAddress:
// some NATs rewrite addresses they find in payloads.
func (m *Message) MappedAddress() (netip.AddrPort, error) {
	return m.address(AttrMappedAddress)
}

// AddMappedAddress appends MAPPED-ADDRESS.
func (m *Message) AddMappedAddress(ap netip.AddrPort) {
	m.Add(AttrMappedAddress, appendAddress(nil, ap))
}

// XORMappedAddress returns XOR-MAPPED-ADDRESS: the request's source as the
// server saw it (RFC 8489 §14.2).
func (m *Message) XORMappedAddress() (netip.AddrPort, error) {
	return m.address(AttrXORMappedAddress)
}

// AddXORMappedAddress appends XOR-MAPPED-ADDRESS. Set m.TxID first: the
// IPv6 form is XORed with it.
func (m *Message) AddXORMappedAddress(ap netip.AddrPort) {
	v := appendAddress(nil, ap)
	xorAddress(v, m.TxID)
	m.Add(AttrXORMappedAddress, v)
}

// ResponseOrigin returns RESPONSE-ORIGIN, the address the response was
// sent from (RFC 5780 §7.3). Comparing it with the packet's source shows
// whether the server honoured CHANGE-REQUEST.
func (m *Message) ResponseOrigin() (netip.AddrPort, error) {
	return m.address(AttrResponseOrigin)
}

// AddResponseOrigin appends RESPONSE-ORIGIN.
func (m *Message) AddResponseOrigin(ap netip.AddrPort) {
	m.Add(AttrResponseOrigin, appendAddress(nil, ap))
}

// OtherAddress returns OTHER-ADDRESS, the server's alternate IP and port
// that CHANGE-REQUEST switches to (RFC 5780 §7.4).
func (m *Message) OtherAddress() (netip.AddrPort, error) {
	return m.address(AttrOtherAddress)
}

// AddOtherAddress appends OTHER-ADDRESS.
func (m *Message) AddOtherAddress(ap netip.AddrPort) {
	m.Add(AttrOtherAddress, appendAddress(nil, ap))
}

// SourceAddress returns the RFC 3489 SOURCE-ADDRESS (§11.2.5), the older
// RESPONSE-ORIGIN. Read-only: RFC 8489 servers must not send it.
func (m *Message) SourceAddress() (netip.AddrPort, error) {
	return m.address(AttrSourceAddress)
}

// ChangedAddress returns the RFC 3489 CHANGED-ADDRESS (§11.2.3), the older
// OTHER-ADDRESS. Read-only.
func (m *Message) ChangedAddress() (netip.AddrPort, error) {
	return m.address(AttrChangedAddress)
}

// address decodes the first t attribute, undoing the XOR for
// XOR-MAPPED-ADDRESS.
func (m *Message) address(t AttrType) (netip.AddrPort, error) {
	v, err := m.value(t)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if t == AttrXORMappedAddress && (len(v) == addrLenIPv4 || len(v) == addrLenIPv6) {
		v = append([]byte(nil), v...) // the message's bytes stay as received
		xorAddress(v, m.TxID)
	}
	ap, ok := parseAddress(v)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%v %x: %w", t, v, ErrMalformed)
	}
	return ap, nil
}

// parseAddress decodes the RFC 8489 §14.1 layout. The reserved first byte
// is ignored, as the RFC asks.
func parseAddress(v []byte) (netip.AddrPort, bool) {
	switch {
	case len(v) == addrLenIPv4 && v[1] == familyIPv4:
		ip := netip.AddrFrom4([4]byte(v[4:8]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(v[2:4])), true
	case len(v) == addrLenIPv6 && v[1] == familyIPv6:
		ip := netip.AddrFrom16([16]byte(v[4:20]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(v[2:4])), true
	}
	return netip.AddrPort{}, false
}

// appendAddress encodes ap in the RFC 8489 §14.1 layout. IPv4-mapped IPv6
// addresses go out as IPv4, the family a dual-stack socket really used;
// zones are dropped; an invalid address encodes as 0.0.0.0.
func appendAddress(b []byte, ap netip.AddrPort) []byte {
	ip := ap.Addr().Unmap()
	b = append(b, 0, familyIPv4)
	if ip.Is6() {
		b[len(b)-1] = familyIPv6
	}
	b = binary.BigEndian.AppendUint16(b, ap.Port())
	switch {
	case ip.Is6():
		a := ip.As16()
		return append(b, a[:]...)
	case ip.Is4():
		a := ip.As4()
		return append(b, a[:]...)
	}
	return append(b, 0, 0, 0, 0)
}

// xorAddress applies the XOR-MAPPED-ADDRESS mask in place (RFC 8489 §14.2):
// the port with the cookie's top 16 bits, the address with the cookie and,
// past 4 bytes, the transaction ID. It is its own inverse.
func xorAddress(v []byte, tx TxID) {
	var mask [16]byte
	binary.BigEndian.PutUint32(mask[:4], MagicCookie)
	copy(mask[4:], tx[:])
	v[2] ^= mask[0]
	v[3] ^= mask[1]
	for i := range v[4:] {
		v[4+i] ^= mask[i]
	}
}
