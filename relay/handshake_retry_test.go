package relay

import (
	"bytes"
	"context"
	"net"
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
	r, keys := benchRelay(t, 1)
	agentConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer agentConn.Close()
	from := agentConn.LocalAddr().(*net.UDPAddr).AddrPort()
	relayPub := r.static.Load().Public()
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

	initiate := func(index uint32, at time.Time) (*secure.Initiation, []byte) {
		in, m1, err := secure.Initiate(keys[0], relayPub, index, secure.Timestamp(at), secure.Cookie{})
		if err != nil {
			t.Fatal(err)
		}
		return in, m1
	}
	answer := func() []byte {
		agentConn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 2048)
		n, err := agentConn.Read(buf)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return buf[:n]
	}
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
