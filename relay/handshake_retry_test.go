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

// TestRetryOfAnsweredInitiationGetsSameAnswer: an agent whose answer is
// late re-sends its initiation (same sender index, same address); the
// relay sends the same message 2 again instead of building a second
// pending session, and that message completes the agent's first
// initiation. A new dial (a new sender index) gets a session of its own.
func TestRetryOfAnsweredInitiationGetsSameAnswer(t *testing.T) {
	r, keys, agentConn, from, ctx := retryRig(t)
	relayPub := r.static.Load().Public()

	initiate := func(index uint32, at time.Time) (*secure.Initiation, []byte) {
		in, m1, err := secure.Initiate(keys[0], relayPub, index, secure.Timestamp(at), secure.Cookie{})
		if err != nil {
			t.Fatal(err)
		}
		return in, m1
	}
	answer := func() []byte { return readAnswer(t, agentConn) }
	pending := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.pending[keys[0].Public()])
	}

	now := time.Now()
	first, m1 := initiate(7, now)
	r.handleInitUDP(ctx, m1, from)
	a1 := answer()
	_, retry := initiate(7, now.Add(time.Second))
	r.handleInitUDP(ctx, retry, from)
	a2 := answer()
	if !bytes.Equal(a1, a2) {
		t.Fatal("the retry got a different answer")
	}
	if n, resent := pending(), r.stats.HandshakeResent.Load(); n != 1 || resent != 1 {
		t.Fatalf("after a retry: %d pending sessions (want 1), handshake_resent %d (want 1)", n, resent)
	}
	if _, _, err := first.Finish(a2); err != nil {
		t.Fatalf("the answer sent again does not complete the first initiation: %v", err)
	}

	// A new dial draws a new index: a new session.
	_, other := initiate(8, now.Add(2*time.Second))
	r.handleInitUDP(ctx, other, from)
	if a3 := answer(); bytes.Equal(a3, a1) {
		t.Fatal("a new dial got the old answer")
	}
	if n := pending(); n != 2 {
		t.Fatalf("after a new dial: %d pending sessions, want 2", n)
	}
}

// retryRig is a relay whose run loop does not run (tests hand datagrams
// to its handlers) and an agent's UDP socket at from; ctx is the
// handlers'. The sessions the test leaves pending end with it.
func retryRig(t *testing.T) (r *Relay, keys []secure.PrivateKey, agentConn *net.UDPConn, from netip.AddrPort, ctx context.Context) {
	r, keys = benchRelay(t, 1)
	agentConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
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
		agentConn.Close()
	})
	return r, keys, agentConn, agentConn.LocalAddr().(*net.UDPAddr).AddrPort(), ctx
}

// readAnswer reads the relay's next answer on agentConn (2 s at most).
func readAnswer(t *testing.T, agentConn *net.UDPConn) []byte {
	t.Helper()
	agentConn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	n, err := agentConn.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return buf[:n]
}
