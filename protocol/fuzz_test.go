package protocol

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
)

// FuzzControl decodes arbitrary frames: no panic, and whatever decodes
// re-encodes to a frame that decodes to the same message.
func FuzzControl(f *testing.F) {
	for _, c := range controlCases {
		f.Add(unhex(f, c.hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadMessage(bytes.NewReader(b))
		if err != nil {
			return
		}
		again, err := AppendFrame(nil, m)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", m, err)
		}
		m2, err := ReadMessage(bytes.NewReader(again))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %#v: got %#v, %v", m, m2, err)
		}
	})
}

// FuzzStreamHeader decodes arbitrary stream headers.
func FuzzStreamHeader(f *testing.F) {
	f.Add(unhex(f, "0014 01 01 03776562 04 c6336409 c738 04 cb007101 0050"))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadStreamHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		h2, err := ReadStreamHeader(bytes.NewReader(AppendStreamHeader(nil, h)))
		if err != nil || h2 != h {
			t.Fatalf("round trip of %+v: got %+v, %v", h, h2, err)
		}
	})
}

// FuzzDatagram runs every datagram header parser over arbitrary input.
func FuzzDatagram(f *testing.F) {
	f.Add(unhex(f, "a3000000 01020304 0000000000000005"))
	f.Add(AppendRefuse(nil, Refuse{Code: RefuseVersion, Version: 1}))
	f.Add(AppendHandshakeHeader(nil, HandshakeHeader{Type: TypeHandshakeInit, Version: 1, Sender: 3}))
	f.Add(append(AppendCookieHeader(nil, CookieHeader{Reason: CookieLoad, Receiver: 4}), make([]byte, CookieReplyLen-CookieHeaderLen)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, err := Classify(b)
		if err != nil {
			return
		}
		_, _ = ReceiverIndex(typ, b)
		switch typ {
		case TypeCookie:
			if h, err := ParseCookieHeader(b); err == nil && !bytes.Equal(AppendCookieHeader(nil, h), b[:CookieHeaderLen]) && b[2]|b[3] == 0 {
				t.Fatalf("cookie header %x does not round trip", b[:CookieHeaderLen])
			}
		case TypeData:
			if h, err := ParseDataHeader(b); err == nil && !bytes.Equal(AppendDataHeader(nil, h), b[:DataHeaderLen]) && b[2]|b[3] == 0 {
				t.Fatalf("data header %x does not round trip", b[:DataHeaderLen])
			}
		case TypeRefuse:
			_, _ = ParseRefuse(b)
		default:
			_, _ = ParseHandshakeHeader(b)
		}
	})
}

// FuzzKeepaliveAck: any payload parses without panicking, one that parses
// round-trips, and its send time reads the same as a keepalive's.
func FuzzKeepaliveAck(f *testing.F) {
	f.Add(AppendKeepaliveAck(nil, 7, netip.MustParseAddrPort("192.0.2.1:4500")))
	f.Add(AppendKeepaliveAck(nil, 1<<63, netip.MustParseAddrPort("[2001:db8::1]:7700")))
	f.Add(AppendKeepalive(nil, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		sent, observed, err := ParseKeepaliveAck(b)
		if err != nil {
			return
		}
		if got := AppendKeepaliveAck(nil, sent, observed); !bytes.Equal(got, b) {
			t.Fatalf("keepalive answer %x does not round trip: %x", b, got)
		}
		if s, err := ParseKeepalive(b); err != nil || s != sent {
			t.Fatalf("the send time of %x reads %d, %v as a keepalive; %d as an answer", b, s, err, sent)
		}
	})
}

// FuzzParity: any payload parses without panicking; one that parses has
// increasing offsets from 0, a valid index, and its header round-trips.
func FuzzParity(f *testing.F) {
	f.Add(append(AppendParityHeader(nil, Parity{Base: 1 << 40, Offsets: []uint8{0, 1, 3}, Shards: 2, Index: 1}), 0, 5, 1, 2, 3))
	f.Add(AppendParityHeader(nil, Parity{Base: 9, Offsets: []uint8{0}, Shards: 1}))
	f.Add(AppendLossReport(nil, 100, 99))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseParity(b)
		if err != nil {
			return
		}
		if p.Offsets[0] != 0 || p.Index >= p.Shards || len(p.Shard) < 3 {
			t.Fatalf("%x parsed to %+v", b, p)
		}
		for i := 1; i < len(p.Offsets); i++ {
			if p.Offsets[i] <= p.Offsets[i-1] {
				t.Fatalf("%x: offsets %v do not increase", b, p.Offsets)
			}
		}
		hdr := AppendParityHeader(nil, p)
		if b[11] == 0 && !bytes.Equal(append(hdr, p.Shard...), b) {
			t.Fatalf("parity %x does not round trip: %x", b, append(hdr, p.Shard...))
		}
		if exp, got, err := ParseLossReport(b); err == nil && got > exp {
			t.Fatalf("loss report %x: %d received of %d", b, got, exp)
		}
	})
}
