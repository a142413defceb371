package demux

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

func TestRouting(t *testing.T) {
	s, err := Listen(0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := make(chan string, 10)
	s.Register(7, func(typ protocol.Type, b []byte, from netip.AddrPort) { got <- "owner7 " + typ.String() })
	s.RegisterRemote(9, func(typ protocol.Type, b []byte, from netip.AddrPort) { got <- "remote9 " + typ.String() })
	s.SetSTUN(func(b []byte, from netip.AddrPort) { got <- "stun" })

	c, err := net.Dial("udp", "127.0.0.1:"+itoa(s.LocalAddr().Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := protocol.AppendDataHeader(nil, protocol.DataHeader{Receiver: 7})
	data = append(data, make([]byte, 16)...)
	resp := protocol.AppendHandshakeHeader(nil, protocol.HandshakeHeader{Type: protocol.TypeHandshakeResp, Version: 1, Sender: 3})
	resp = binary.BigEndian.AppendUint32(resp, 7)
	stun := make([]byte, 20)
	binary.BigEndian.PutUint16(stun, 0x0101)
	binary.BigEndian.PutUint32(stun[4:], 0x2112A442)
	cases := []struct {
		pkt  []byte
		want string
	}{
		{data, "owner7 data"},
		{resp, "owner7 handshake-resp"},
		{protocol.AppendRefuse(nil, protocol.Refuse{Code: protocol.RefuseUnknownSession, Index: 9}), "remote9 refuse"},
		{stun, "stun"},
	}
	for _, tc := range cases {
		c.Write(tc.pkt)
		select {
		case g := <-got:
			if g != tc.want {
				t.Errorf("got %q, want %q", g, tc.want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("datagram for %q never routed", tc.want)
		}
	}
	// Junk: unknown type, short, unknown index.
	c.Write([]byte{0x42, 1, 2})
	c.Write([]byte{0xA3})
	c.Write(protocol.AppendDataHeader(nil, protocol.DataHeader{Receiver: 12345}))
	deadline := time.Now().Add(2 * time.Second)
	for s.Malformed.Load() < 2 || s.Unrouted.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("malformed=%d unrouted=%d, want 2 and 1", s.Malformed.Load(), s.Unrouted.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case g := <-got:
		t.Fatalf("junk reached a handler: %q", g)
	default:
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
