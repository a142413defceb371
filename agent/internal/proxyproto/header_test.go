package proxyproto

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

func TestAppend(t *testing.T) {
	c4 := netip.MustParseAddrPort("198.51.100.7:40000")
	s4 := netip.MustParseAddrPort("203.0.113.1:8080")
	c6 := netip.MustParseAddrPort("[2001:db8::7]:40000")
	cases := []struct {
		name           string
		v              Version
		client, server netip.AddrPort
		want           string // text for V1, hex for V2
	}{
		{"v1 ipv4", V1, c4, s4, "PROXY TCP4 198.51.100.7 203.0.113.1 40000 8080\r\n"},
		{"v1 ipv6", V1, c6, netip.MustParseAddrPort("[2001:db8::1]:80"), "PROXY TCP6 2001:db8::7 2001:db8::1 40000 80\r\n"},
		{"v1 mixed", V1, c6, s4, "PROXY UNKNOWN\r\n"},
		{"v2 ipv4", V2, c4, s4, "0d0a0d0a000d0a515549540a 21 11 000c c6336407 cb007101 9c40 1f90"},
		{"v2 mixed", V2, c6, s4, "0d0a0d0a000d0a515549540a 20 00 0000"},
		{"off", Off, c4, s4, ""},
	}
	for _, c := range cases {
		got := Append(nil, c.v, c.client, c.server)
		want := []byte(c.want)
		if c.v == V2 {
			want, _ = hex.DecodeString(string(bytes.ReplaceAll(want, []byte(" "), nil)))
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", c.name, got, want)
		}
	}
}
