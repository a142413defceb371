package relay

import (
	"bytes"
	"context"
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
	r, keys, agentConn, from, ctx := retryRig(t)
	answer := func() []byte { return readAnswer(t, agentConn) }
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

	// Confirmed: a late copy is dropped, unanswered and unqueued (it
	// used to cost two DH to be found stale, and a cookie).
	for got := 0; got < maxResends-1; got++ { // the answers to the copies above
		answer()
	}
	r.mu.Lock()
	s := r.answered[secure.MAC1(m1)]
	r.mu.Unlock()
	s.confirmed.Store(true)
	defer s.shutdown("test over")
	if !r.activate(s) {
		t.Fatal("the session was not activated")
	}
	coalesced := r.stats.HandshakeCoalesced.Load()
	r.handleDatagram(ctx, m1, from)
	if q := len(r.handshakes) + len(r.proven); q != 1 || r.stats.HandshakeCoalesced.Load() != coalesced+1 {
		t.Fatalf("a copy after confirmation: %d queued (want 1), handshake_coalesced +%d (want +1)", q, r.stats.HandshakeCoalesced.Load()-coalesced)
	}
	agentConn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := agentConn.Read(make([]byte, 2048)); err == nil {
		t.Fatalf("a copy after confirmation was answered (%d bytes)", n)
	}

	// Released: the entry is gone, a copy goes through the gates.
	s.shutdown("test")
	r.mu.Lock()
	left := len(r.answered)
	r.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d entries left for copies after the session ended", left)
	}
}

// TestStoppingRelayDropsInitiations: once Run is stopping, an initiation
// (its agents, told goodbye, come straight back) is dropped before any
// budget or queue, where it used to cost two DH to be refused at join.
func TestStoppingRelayDropsInitiations(t *testing.T) {
	r, keys := benchRelay(t, 1)
	_, m1, err := secure.Initiate(keys[0], r.static.Load().Public(), 7, secure.Timestamp(time.Now()), secure.Cookie{})
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	r.handleDatagram(stopped, m1, from)
	if q := len(r.handshakes) + len(r.proven); q != 0 || r.stats.HandshakeDropped.Load() != 1 {
		t.Fatalf("stopping: %d queued (want 0), handshake_dropped %d (want 1)", q, r.stats.HandshakeDropped.Load())
	}
	r.handleDatagram(context.Background(), m1, from)
	if q := len(r.handshakes); q != 1 {
		t.Fatalf("running: %d queued, want 1", q)
	}
}
