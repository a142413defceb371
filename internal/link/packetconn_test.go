package link

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// sessions returns the two ends of a fresh handshake.
func sessions(t *testing.T) (agent, relay *secure.Session) {
	t.Helper()
	ak, _ := secure.GeneratePrivateKey()
	rk, _ := secure.GeneratePrivateKey()
	in, m1, err := secure.Initiate(ak, rk.Public(), 1, secure.Timestamp(time.Now()), secure.Cookie{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := secure.Consume(rk, m1)
	if err != nil {
		t.Fatal(err)
	}
	rs, m2, _ := resp.Respond(2, nil)
	as, _, err := in.Finish(m2)
	if err != nil {
		t.Fatal(err)
	}
	return as, rs
}

// udpLinks starts a UDP link on each of a and b (a the agent's end, b the
// relay's), closed when the test ends.
func udpLinks(t *testing.T, a, b *PacketConn) (la, lb *Link) {
	t.Helper()
	la, err := NewUDPLink(a, 1, DefaultTuning(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { la.Close() })
	lb, err = NewUDPLink(b, 1, DefaultTuning(), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lb.Close() })
	return la, lb
}

// readWant reads one KCP packet from c (handling what comes before it) and
// fails unless it is want.
func readWant(t *testing.T, c *PacketConn, want string) {
	t.Helper()
	buf := make([]byte, 2048)
	n, _, err := c.ReadFrom(buf)
	if err != nil || string(buf[:n]) != want {
		t.Fatalf("ReadFrom: got %q, %v; want %q", buf[:n], err, want)
	}
}

// wire captures what a PacketConn sends.
type wire struct {
	mu   sync.Mutex
	pkts [][]byte
	to   []netip.AddrPort
}

func (w *wire) send(b []byte, to netip.AddrPort) error {
	w.mu.Lock()
	w.pkts = append(w.pkts, append([]byte(nil), b...))
	w.to = append(w.to, to)
	w.mu.Unlock()
	return nil
}

func TestPacketConnSealOpenRoam(t *testing.T) {
	as, rs := sessions(t)
	relayAddr := netip.MustParseAddrPort("203.0.113.1:7700")
	first := netip.MustParseAddrPort("198.51.100.1:4000")
	moved := netip.MustParseAddrPort("198.51.100.1:4999")
	attacker := netip.MustParseAddrPort("192.0.2.66:5000")
	var aw, rw wire
	var roamed []netip.AddrPort
	confirmed := 0
	a := NewPacketConn(as, relayAddr, aw.send, nil, nil)
	r := NewPacketConn(rs, first, rw.send, func() { confirmed++ }, func(p netip.AddrPort) { roamed = append(roamed, p) })
	read := func(c *PacketConn, want string) { t.Helper(); readWant(t, c, want) }

	a.WriteTo([]byte("kcp packet 1"), nil)
	a.WriteTo([]byte("kcp packet 2"), nil)
	r.Deliver(aw.pkts[0], first)
	r.Deliver([]byte{0xA3, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, moved) // forged
	r.Deliver(aw.pkts[0], moved)                                                                                                   // replay from elsewhere
	r.Deliver(aw.pkts[1], moved)                                                                                                   // genuine, NAT rebinding
	read(r, "kcp packet 1")
	read(r, "kcp packet 2")
	if got := r.AuthFailed.Load(); got != 2 {
		t.Errorf("AuthFailed = %d, want 2 (one forged, one replayed)", got)
	}
	if confirmed != 1 {
		t.Errorf("confirm callback ran %d times, want 1", confirmed)
	}
	// The genuine packet from the new address earned it a challenge, not
	// the traffic: replies still go to the validated address.
	if len(roamed) != 0 || r.Peer() != first {
		t.Fatalf("moved to %v before validation (peer %v)", roamed, r.Peer())
	}
	if len(rw.to) != 1 || rw.to[0] != moved || rw.pkts[0][1] != byte(protocol.DataPathChallenge) {
		t.Fatalf("want one path challenge sent to %v, got %d packets to %v", moved, len(rw.to), rw.to)
	}
	challenge := rw.pkts[0]

	// The agent answers the challenge to where it came from (through the
	// NAT, the relay sees the answer arrive from the new mapping).
	a.Deliver(challenge, relayAddr)
	r.WriteTo([]byte("down"), nil)
	a.Deliver(rw.pkts[len(rw.pkts)-1], relayAddr)
	read(a, "down")
	if n := len(aw.pkts); n != 3 || aw.to[2] != relayAddr || aw.pkts[2][1] != byte(protocol.DataPathResponse) {
		t.Fatalf("agent sent %d packets (last to %v), want a path response to %v", n, aw.to[n-1], relayAddr)
	}
	response := aw.pkts[2]

	// The response from any other address does not validate (and the
	// replay window takes each response once)...
	a.WriteTo([]byte("kcp packet 3"), nil)
	r.Deliver(response, attacker)
	r.Deliver(aw.pkts[3], first)
	read(r, "kcp packet 3")
	if len(roamed) != 0 {
		t.Fatalf("a response from %v moved the peer", attacker)
	}
	// ...from the challenged address it does, at once: the next packet
	// from there draws a new challenge, which the agent answers.
	time.Sleep(challengeEvery)
	a.WriteTo([]byte("kcp packet 4"), nil)
	r.Deliver(aw.pkts[4], moved)
	read(r, "kcp packet 4")
	a.Deliver(rw.pkts[len(rw.pkts)-1], relayAddr)
	r.WriteTo([]byte("down 2"), nil)
	a.Deliver(rw.pkts[len(rw.pkts)-1], relayAddr)
	read(a, "down 2")
	a.WriteTo([]byte("kcp packet 5"), nil)
	r.Deliver(aw.pkts[len(aw.pkts)-2], moved) // the response
	r.Deliver(aw.pkts[len(aw.pkts)-1], moved)
	read(r, "kcp packet 5")
	if len(roamed) != 1 || roamed[0] != moved || r.Peer() != moved {
		t.Fatalf("roamed %v, peer %v; want one move to %v", roamed, r.Peer(), moved)
	}
	r.WriteTo([]byte("reply"), nil)
	if to := rw.to[len(rw.to)-1]; to != moved {
		t.Errorf("reply went to %v, want the new address %v", to, moved)
	}
	// The agent's conn has no roaming: its peer (the relay) is fixed.
	if a.Peer() != relayAddr {
		t.Errorf("agent's peer moved to %v", a.Peer())
	}
}

func TestPacketConnInboxBounded(t *testing.T) {
	as, rs := sessions(t)
	var aw wire
	a := NewPacketConn(as, netip.AddrPort{}, aw.send, nil, nil)
	r := NewPacketConn(rs, netip.AddrPort{}, func([]byte, netip.AddrPort) error { return nil }, nil, nil)
	a.WriteTo([]byte("x"), nil)
	for range inboxLen + 10 {
		r.DeliverRelayed(aw.pkts[0])
	}
	if got := r.Dropped.Load(); got != 10 {
		t.Fatalf("Dropped = %d, want 10: a full inbox must drop, never block the socket reader", got)
	}
	r.Close()
	if _, _, err := r.ReadFrom(make([]byte, 100)); err == nil {
		t.Fatal("ReadFrom after Close succeeded")
	}
}
