package link

import (
	"net/netip"
	"testing"

	"github.com/pinhole/pinhole/protocol"
)

// TestKeepalive: the relay's end answers a keepalive to where it came
// from, with the send time and that address, in a datagram no larger than
// the keepalive; the agent's handler gets both. An end that does not
// answer keepalives (an older relay, a peer session) still counts one as a
// sign of life.
func TestKeepalive(t *testing.T) {
	as, rs := sessions(t)
	relayAddr := netip.MustParseAddrPort("203.0.113.1:7700")
	first := netip.MustParseAddrPort("198.51.100.1:4000")
	rebound := netip.MustParseAddrPort("198.51.100.1:4999")
	var aw, rw wire
	a := NewPacketConn(as, relayAddr, aw.send, nil, nil)
	r := NewPacketConn(rs, first, rw.send, nil, func(netip.AddrPort) {})
	r.AnswerKeepalives(nil)
	type answer struct {
		sent     uint64
		observed netip.AddrPort
	}
	var got []answer
	a.SetKeepaliveHandler(func(sent uint64, observed netip.AddrPort) { got = append(got, answer{sent, observed}) })
	read := func(c *PacketConn, want string) { t.Helper(); readWant(t, c, want) }

	for i, from := range []netip.AddrPort{first, rebound} {
		aw.pkts, rw.pkts, rw.to = nil, nil, nil
		sent := uint64(1000 + i)
		if err := a.SendKeepalive(sent); err != nil {
			t.Fatal(err)
		}
		a.WriteTo([]byte("kcp"), nil) // ReadFrom returns after the keepalive is handled
		r.Deliver(aw.pkts[0], from)
		r.Deliver(aw.pkts[1], from)
		read(r, "kcp")
		var ack []byte
		for j, p := range rw.pkts {
			if p[1] == byte(protocol.DataKeepaliveAck) {
				if ack != nil || rw.to[j] != from {
					t.Fatalf("answers went to %v, want one to %v", rw.to, from)
				}
				ack = p
			}
		}
		if ack == nil {
			t.Fatalf("keepalive from %v not answered (sent %d packets to %v)", from, len(rw.pkts), rw.to)
		}
		if len(ack) > len(aw.pkts[0]) {
			t.Errorf("answer of %d bytes to a keepalive of %d: amplifies", len(ack), len(aw.pkts[0]))
		}
		r.WriteTo([]byte("back"), nil)
		a.Deliver(ack, relayAddr)
		a.Deliver(rw.pkts[len(rw.pkts)-1], relayAddr)
		read(a, "back")
		if len(got) != i+1 || got[i] != (answer{sent, from}) {
			t.Fatalf("agent's handler got %v, want {%d %v} last", got, sent, from)
		}
	}
	if len(aw.pkts) != 2 {
		t.Errorf("the agent answered the answer: sent %d packets", len(aw.pkts))
	}

	// An end without AnswerKeepalives stays silent but hears life.
	as2, rs2 := sessions(t)
	var aw2, rw2 wire
	a2 := NewPacketConn(as2, relayAddr, aw2.send, nil, nil)
	r2 := NewPacketConn(rs2, first, rw2.send, nil, nil)
	a2.SendKeepalive(7)
	a2.WriteTo([]byte("kcp"), nil)
	r2.Deliver(aw2.pkts[0], first)
	r2.Deliver(aw2.pkts[1], first)
	read(r2, "kcp")
	if len(rw2.pkts) != 0 || r2.LastReceive().IsZero() {
		t.Fatalf("non-answering end sent %d packets, last receive %v; want none and a receive time", len(rw2.pkts), r2.LastReceive())
	}
}
