package secure

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

func TestMACsAndCookieRoundTrip(t *testing.T) {
	agent, relay := mustKey(t), mustKey(t)
	mc := NewMACChecker(relay)
	from := netip.MustParseAddrPort("198.51.100.7:40000")
	now := time.Unix(1800000000, 0)

	in, m1, _ := Initiate(agent, relay.Public(), 11, Timestamp(now), Cookie{})
	if !mc.CheckMAC1(m1) {
		t.Fatal("mac1 of a genuine message 1 does not check")
	}
	if mc.CheckMAC2(m1, from, now) {
		t.Fatal("mac2 checks without a cookie")
	}
	// mac1 is keyed by the responder: another relay's checker refuses it,
	// and so does any flipped byte.
	if NewMACChecker(mustKey(t)).CheckMAC1(m1) {
		t.Fatal("mac1 checks under another relay key")
	}
	for _, i := range []int{0, 10, InitLen - 2*MACLen - 1, InitLen - MACLen - 1} {
		bad := append([]byte(nil), m1...)
		bad[i] ^= 1
		if mc.CheckMAC1(bad) {
			t.Fatalf("mac1 checks with byte %d flipped", i)
		}
	}
	if mc.CheckMAC1([]byte{byte(protocol.TypeHandshakeInit)}) || mc.CheckMAC1(m1[:InitLen-1]) {
		t.Fatal("mac1 checks a short message")
	}

	reply := mc.CookieReply(m1, from, protocol.CookieLoad, now)
	if len(reply) != protocol.CookieReplyLen || len(reply) >= len(m1) {
		t.Fatalf("cookie reply is %d bytes; must be %d and smaller than the %d-byte request", len(reply), protocol.CookieReplyLen, len(m1))
	}
	h, err := protocol.ParseCookieHeader(reply)
	if err != nil || h.Receiver != 11 || h.Reason != protocol.CookieLoad {
		t.Fatalf("cookie header %+v %v, want receiver 11, reason load", h, err)
	}
	ck, err := OpenCookieReply(reply, relay.Public(), in.MAC1())
	if err != nil {
		t.Fatalf("open cookie reply: %v", err)
	}
	if _, err := OpenCookieReply(reply, relay.Public(), [MACLen]byte{1}); err == nil {
		t.Fatal("cookie reply opened for another message 1")
	}

	_, m1c, _ := Initiate(agent, relay.Public(), 12, Timestamp(now), ck)
	if !mc.CheckMAC1(m1c) || !mc.CheckMAC2(m1c, from, now) {
		t.Fatal("message 1 with the cookie fails mac1 or mac2")
	}
	other := netip.MustParseAddrPort("198.51.100.7:40001")
	if mc.CheckMAC2(m1c, other, now) {
		t.Fatal("mac2 checks from another port: the cookie must bind the address and port")
	}
	r, err := Consume(relay, m1c)
	if err != nil || r.Cookie != ck {
		t.Fatalf("cookie echo %x %v, want %x", r.Cookie, err, ck)
	}
	if !mc.ValidCookie(r.Cookie, from, now) || mc.ValidCookie(r.Cookie, other, now) || mc.ValidCookie(Cookie{}, from, now) {
		t.Fatal("ValidCookie wrong for the issuing address, another port or the zero cookie")
	}
	// Valid through the next rotation period, gone after two.
	if !mc.ValidCookie(ck, from, now.Add(cookieRotation+time.Second)) {
		t.Fatal("cookie expired after one rotation")
	}
	if mc.ValidCookie(ck, from, now.Add(3*cookieRotation+2*time.Second)) {
		t.Fatal("cookie still valid after two rotations")
	}
}

// TestWithMAC2: the same initiation re-MACed with a cookie proves the
// address (mac2 checks, mac1 unchanged) and still completes a handshake
// with the initiation that built it; its encrypted cookie stays empty.
func TestWithMAC2(t *testing.T) {
	agent, relay := mustKey(t), mustKey(t)
	mc := NewMACChecker(relay)
	from := netip.MustParseAddrPort("198.51.100.7:40000")
	now := time.Unix(1800000000, 0)
	in, m1, _ := Initiate(agent, relay.Public(), 11, Timestamp(now), Cookie{})
	ck, err := OpenCookieReply(mc.CookieReply(m1, from, protocol.CookieLoad, now), relay.Public(), in.MAC1())
	if err != nil {
		t.Fatal(err)
	}
	again := WithMAC2(m1, ck)
	if !mc.CheckMAC1(again) || !mc.CheckMAC2(again, from, now) {
		t.Fatal("the re-MACed initiation fails mac1 or mac2")
	}
	if MAC1(again) != in.MAC1() || string(again[:InitLen-MACLen]) != string(m1[:InitLen-MACLen]) {
		t.Fatal("re-MACing changed more than mac2")
	}
	if mc.CheckMAC2(again, netip.MustParseAddrPort("198.51.100.7:40001"), now) {
		t.Fatal("mac2 checks from another port")
	}
	r, err := Consume(relay, again)
	if err != nil || !r.Cookie.IsZero() {
		t.Fatalf("consume: cookie %x, %v; want the empty cookie the initiation was built with", r.Cookie, err)
	}
	_, m2, err := r.Respond(7, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.Finish(m2); err != nil {
		t.Fatalf("the initiation does not finish with the answer to its re-MACed copy: %v", err)
	}
	if WithMAC2(m1[:InitLen-1], ck) != nil {
		t.Fatal("a short message was re-MACed")
	}
}
