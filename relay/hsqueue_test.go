package relay

import (
	"net/netip"
	"testing"
)

// TestRetryWhileQueuedIsCoalesced: a second initiation from an address and
// port whose first still waits is dropped and counted, not queued for a
// second handshake; other ports, the proven queue and a retry after the
// worker took the first are queued; a full queue forgets the address so
// its next retry is queued.
func TestRetryWhileQueuedIsCoalesced(t *testing.T) {
	r := &Relay{handshakes: make(chan initMsg, 3), proven: make(chan initMsg, 3)}
	a := netip.MustParseAddrPort("192.0.2.1:1000")
	b := netip.MustParseAddrPort("192.0.2.1:1001")
	msg := []byte{1}

	r.enqueue(msg, a, false)
	r.enqueue(msg, a, false) // a retry while the first waits
	r.enqueue(msg, b, false) // another agent behind the same address
	r.enqueue(msg, a, true)  // a's retry with a cookie goes to the proven queue
	if got := len(r.handshakes); got != 2 {
		t.Fatalf("%d initiations queued, want 2 (a once, b once)", got)
	}
	if got := len(r.proven); got != 1 {
		t.Fatalf("%d proven initiations queued, want 1", got)
	}
	if got := r.stats.HandshakeCoalesced.Load(); got != 1 {
		t.Fatalf("handshake_coalesced = %d, want 1", got)
	}

	// The worker took a's initiation and answered it: a may queue again.
	m := <-r.handshakes
	r.queued.remove(m.from, m.proven)
	r.enqueue(msg, a, false)
	if got := len(r.handshakes); got != 2 {
		t.Fatalf("after the worker took a's initiation, %d queued, want 2", got)
	}

	// A full queue drops and counts, and does not leave the address marked.
	c := netip.MustParseAddrPort("192.0.2.1:1002")
	d := netip.MustParseAddrPort("192.0.2.1:1003")
	r.enqueue(msg, c, false) // fills the queue (3)
	r.enqueue(msg, d, false) // dropped: full
	if got := r.stats.HandshakeDropped.Load(); got != 1 {
		t.Fatalf("handshake_dropped = %d, want 1 for the full queue", got)
	}
	<-r.handshakes
	r.enqueue(msg, d, false)
	if got := len(r.handshakes); got != 3 {
		t.Fatalf("d's retry after a full queue: %d queued, want 3", got)
	}
}
