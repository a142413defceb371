package secure

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

// FuzzConsume feeds arbitrary message 1 bytes to the responder: it must
// never panic and never accept a message it did not authenticate.
func FuzzConsume(f *testing.F) {
	agent, relay := mustKey(f), mustKey(f)
	_, m1, _ := Initiate(agent, relay.Public(), 1, Timestamp(time.Unix(1700000000, 0)), Cookie{})
	f.Add(m1)
	f.Add(m1[:20])
	f.Add([]byte{0xA1, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Consume(relay, b)
		if err == nil && r.Peer != agent.Public() {
			t.Fatalf("accepted a message 1 from an unknown key %v", r.Peer)
		}
	})
}

// FuzzFinish feeds arbitrary message 2 bytes to the initiator.
func FuzzFinish(f *testing.F) {
	agent, relay := mustKey(f), mustKey(f)
	in, m1, _ := Initiate(agent, relay.Public(), 1, Timestamp(time.Unix(1700000000, 0)), Cookie{})
	r, _ := Consume(relay, m1)
	_, m2, _ := r.Respond(2, []byte("x"))
	f.Add(m2)
	f.Add(m2[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = in.Finish(b)
	})
}

// FuzzOpen feeds arbitrary Data datagrams to an established session.
func FuzzOpen(f *testing.F) {
	agent, relay := mustKey(f), mustKey(f)
	in, m1, _ := Initiate(agent, relay.Public(), 1, Timestamp(time.Unix(1700000000, 0)), Cookie{})
	r, _ := Consume(relay, m1)
	rs, m2, _ := r.Respond(2, nil)
	as, _, _ := in.Finish(m2)
	pkt, _ := as.Seal(nil, []byte("payload"))
	f.Add(pkt)
	f.Add(pkt[:16])
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, err := rs.Open(nil, b); err == nil && string(got) != "payload" {
			t.Fatalf("forged packet opened to %q", got)
		}
	})
}

// FuzzCookieReply feeds arbitrary bytes to the cookie and MAC checks of
// both ends: no panic, and no forged reply opens.
func FuzzCookieReply(f *testing.F) {
	agent, relay := mustKey(f), mustKey(f)
	mc := NewMACChecker(relay)
	from := netip.MustParseAddrPort("192.0.2.1:1000")
	now := time.Unix(1800000000, 0)
	in, m1, _ := Initiate(agent, relay.Public(), 1, Timestamp(now), Cookie{})
	reply := mc.CookieReply(m1, from, protocol.CookieLoad, now)
	f.Add(reply, m1)
	f.Add(reply[:10], m1[:20])
	f.Fuzz(func(t *testing.T, b, msg []byte) {
		if ck, err := OpenCookieReply(b, relay.Public(), in.MAC1()); err == nil && string(b) != string(reply) {
			t.Fatalf("forged cookie reply opened to %x", ck)
		}
		if mc.CheckMAC1(msg) && len(msg) != InitLen {
			t.Fatal("mac1 accepted a message of the wrong length")
		}
		_ = mc.CheckMAC2(msg, from, now)
		_ = MAC1(msg)
	})
}
