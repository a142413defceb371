package relay

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/smux"
)

// stalledControl gives s a control stream whose agent never reads: a smux
// session over a synchronous pipe nobody drains, so the first write blocks
// until its deadline.
func stalledControl(t *testing.T, s *session) *smux.Session {
	relayEnd, agentEnd := net.Pipe()
	t.Cleanup(func() { relayEnd.Close(); agentEnd.Close() })
	mux, err := smux.Client(relayEnd, link.DefaultTuning().Smux())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var st *smux.Stream
	go func() { // the SYN itself waits for the pipe's reader
		st, err = mux.OpenStream()
		close(done)
	}()
	go func() { // read the SYN, then never again
		b := make([]byte, 64)
		agentEnd.Read(b)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("control stream not opened")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.ctrl = st
	return mux
}

// TestIntroductionsDoNotWaitForAStalledAgent: an agent that keeps asking
// for introductions and never reads the answers neither blocks its own
// requests nor holds the relay-wide introduction lock while its control
// writes wait (they did, for the 10 s write deadline each: every other
// agent's introduction waited behind it), and once it has more unread
// answers than the outbox holds, its session ends.
func TestIntroductionsDoNotWaitForAStalledAgent(t *testing.T) {
	r, _ := benchRelay(t, 1)
	entry := r.cfg.Load().Agents[0]
	s := newSession(r, &entry, 1, link.UDP, netip.MustParseAddrPort("127.0.0.1:40000"), [12]byte{})
	mux := stalledControl(t, s)
	t.Cleanup(func() { // what the link's end does to the control stream
		s.shutdown("test over")
		mux.Close()
		r.sessions.Wait()
	})

	start := time.Now()
	for range outboxCap + 2 { // one is being written, outboxCap wait, one more overflows
		s.introduce(protocol.PeerConnect{Peer: "nobody"})
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("introductions for a stalled agent took %v", d)
		}
	}
	locked := make(chan struct{})
	go func() {
		r.introMu.Lock()
		r.introMu.Unlock()
		close(locked)
	}()
	select {
	case <-locked:
	case <-time.After(time.Second):
		t.Fatal("the introduction lock is held while a stalled agent's control write waits")
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("a session with %d unread control messages is still open", outboxCap+2)
	}
}
