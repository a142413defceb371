package link

import (
	"net/netip"
	"sync"
	"testing"
	"time"

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
	first := netip.MustParseAddrPort("198.51.100.1:4000")
	moved := netip.MustParseAddrPort("198.51.100.1:4999")
	var aw, rw wire
	var roamed []netip.AddrPort
	confirmed := 0
	a := NewPacketConn(as, netip.MustParseAddrPort("203.0.113.1:7700"), aw.send, nil, nil)
	r := NewPacketConn(rs, first, rw.send, func() { confirmed++ }, func(p netip.AddrPort) { roamed = append(roamed, p) })

	a.WriteTo([]byte("kcp packet 1"), nil)
	a.WriteTo([]byte("kcp packet 2"), nil)
	r.Deliver(aw.pkts[0], first)
	r.Deliver([]byte{0xA3, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, moved) // forged
	r.Deliver(aw.pkts[0], moved)                                                                                                   // replay from elsewhere
	r.Deliver(aw.pkts[1], moved)                                                                                                   // genuine, NAT rebinding

	buf := make([]byte, 2048)
	for _, want := range []string{"kcp packet 1", "kcp packet 2"} {
		n, _, err := r.ReadFrom(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("ReadFrom: got %q, %v; want %q", buf[:n], err, want)
		}
	}
	if got := r.AuthFailed.Load(); got != 2 {
		t.Errorf("AuthFailed = %d, want 2 (one forged, one replayed)", got)
	}
	if confirmed != 1 {
		t.Errorf("confirm callback ran %d times, want 1", confirmed)
	}
	if len(roamed) != 1 || roamed[0] != moved || r.Peer() != moved {
		t.Errorf("roamed %v, peer %v; want one move to %v (forged and replayed packets must not move it)", roamed, r.Peer(), moved)
	}
	r.WriteTo([]byte("reply"), nil)
	if rw.to[0] != moved {
		t.Errorf("reply went to %v, want the new address %v", rw.to[0], moved)
	}
}

func TestPacketConnInboxBounded(t *testing.T) {
	as, rs := sessions(t)
	var aw wire
	a := NewPacketConn(as, netip.AddrPort{}, aw.send, nil, nil)
	r := NewPacketConn(rs, netip.AddrPort{}, func([]byte, netip.AddrPort) error { return nil }, nil, nil)
	a.WriteTo([]byte("x"), nil)
	for range inboxLen + 10 {
		r.Deliver(aw.pkts[0], netip.AddrPort{})
	}
	if got := r.Dropped.Load(); got != 10 {
		t.Fatalf("Dropped = %d, want 10: a full inbox must drop, never block the socket reader", got)
	}
	r.Close()
	if _, _, err := r.ReadFrom(make([]byte, 100)); err == nil {
		t.Fatal("ReadFrom after Close succeeded")
	}
}
