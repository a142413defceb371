// Package proxyproto writes the PROXY protocol header (HAProxy's "PROXY
// protocol" specification, versions 1 and 2) that tells a local service the
// real client address of a connection that arrived through the relay.
// Without it every connection looks like it came from 127.0.0.1, which
// breaks access logs, rate limits and fail2ban on the router.
package proxyproto

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Version selects the header format; Off writes nothing.
type Version int

const (
	Off Version = iota
	V1          // human-readable line (spec §2.1)
	V2          // binary (spec §2.2)
)

// v2Signature is the fixed 12-byte prefix of a v2 header (spec §2.2).
var v2Signature = []byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// Append appends the header for a TCP connection from client to server.
// Mixed or unknown families produce the spec's UNKNOWN/LOCAL form.
func Append(b []byte, v Version, client, server netip.AddrPort) []byte {
	c, s := client.Addr().Unmap(), server.Addr().Unmap()
	sameFamily := c.IsValid() && s.IsValid() && c.Is4() == s.Is4()
	switch v {
	case V1:
		if !sameFamily {
			return append(b, "PROXY UNKNOWN\r\n"...)
		}
		fam := "TCP4"
		if c.Is6() {
			fam = "TCP6"
		}
		return fmt.Appendf(b, "PROXY %s %s %s %d %d\r\n", fam, c, s, client.Port(), server.Port())
	case V2:
		b = append(b, v2Signature...)
		if !sameFamily {
			// Version 2, command LOCAL, family UNSPEC, no addresses.
			return append(b, 0x20, 0x00, 0, 0)
		}
		if c.Is4() {
			b = append(b, 0x21, 0x11) // v2 PROXY, AF_INET + STREAM
			b = binary.BigEndian.AppendUint16(b, 12)
			c4, s4 := c.As4(), s.As4()
			b = append(b, c4[:]...)
			b = append(b, s4[:]...)
		} else {
			b = append(b, 0x21, 0x21) // v2 PROXY, AF_INET6 + STREAM
			b = binary.BigEndian.AppendUint16(b, 36)
			c16, s16 := c.As16(), s.As16()
			b = append(b, c16[:]...)
			b = append(b, s16[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, client.Port())
		return binary.BigEndian.AppendUint16(b, server.Port())
	}
	return b
}
