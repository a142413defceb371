package relay

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol/secure"
)

// TestCopyOfAnsweredInitiationIsAnsweredWithoutHandshake: a byte-identical
// copy of an answered initiation, from the same address, gets the same
// message 2 at once from the socket reader: nothing is queued for the
// handshake workers (the only way to Diffie-Hellman work), no handshake
// is counted and no second session is built. A copy from another port is
// not answered from the cache; copies beyond maxResends are dropped.
func TestCopyOfAnsweredInitiationIsAnsweredWithoutHandshake(t *testing.T) {
	r, keys := benchRelay(t, 1)
	agentConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer agentConn.Close()
	from := agentConn.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		r.mu.Lock()
		var all []*session
		for _, p := range r.pending {
			all = append(all, p...)
		}
		r.mu.Unlock()
		for _, s := range all {
			s.shutdown("test over")
		}
		r.sessions.Wait()
	}()
	answer := func() []byte {
		agentConn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 2048)
		n, err := agentConn.Read(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return buf[:n]
	}
	in, m1, err := secure.Initiate(keys[0], r.static.Load().Public(), 7, secure.Timestamp(time.Now()), secure.Cookie{})
	if err != nil {
		t.Fatal(err)
	}
	r.handleInitUDP(ctx, append([]byte(nil), m1...), from)
	a1 := answer()

	r.handleDatagram(ctx, m1, from)
	a2 := answer()
	if !bytes.Equal(a1, a2) {
		t.Fatal("the copy got a different answer")
	}
	if q := len(r.handshakes) + len(r.proven); q != 0 {
		t.Fatalf("the copy was queued for a handshake (%d queued)", q)
	}
	r.mu.Lock()
	pending := len(r.pending[keys[0].Public()])
	r.mu.Unlock()
	if hs, resent := r.stats.Handshakes.Load(), r.stats.HandshakeResent.Load(); hs != 1 || resent != 1 || pending != 1 {
		t.Fatalf("after a copy: handshakes %d (want 1), handshake_resent %d (want 1), pending sessions %d (want 1)", hs, resent, pending)
	}
	if _, _, err := in.Finish(a2); err != nil {
		t.Fatalf("the answer sent again does not complete the initiation: %v", err)
	}

	// From another port: not the same sender, through the gates.
	other := netip.AddrPortFrom(from.Addr(), from.Port()+1)
	r.handleDatagram(ctx, m1, other)
	if q := len(r.handshakes); q != 1 {
		t.Fatalf("a copy from another port: %d queued, want 1 (through the gates)", q)
	}

	// Bounded: maxResends copies are answered in all, then dropped.
	for range maxResends + 3 {
		r.handleDatagram(ctx, m1, from)
	}
	if resent := r.stats.HandshakeResent.Load(); resent != maxResends {
		t.Fatalf("handshake_resent %d after many copies, want %d", resent, maxResends)
	}
	if q := len(r.handshakes) + len(r.proven); q != 1 {
		t.Fatalf("copies beyond the bound were queued (%d queued, want the 1 from the other port)", q)
	}
}
