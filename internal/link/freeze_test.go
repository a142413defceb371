package link

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
	"time"
)

// freezingPair is arqPair whose conversations freeze while idle, with
// the small windows of a control conversation.
func freezingPair(t *testing.T, drop func() bool) (a, b *arqConn) {
	tn := DefaultTuning()
	tn.SendWindow, tn.RecvWindow = ctlWindow, ctlWindow
	a, b = arqPair(t, tn, drop)
	for _, c := range []*arqConn{a, b} {
		c.mu.Lock()
		c.freezes = true
		c.freezeLocked()
		c.mu.Unlock()
	}
	return a, b
}

func frozen(c *arqConn) bool { return c.frozenNow() }

// TestFrozenConversation: a freezing conversation holds no KCP state
// once idle, and goes on where it stopped: messages of every size up to
// 200 KB (beyond the 32-segment window, so writes wait for ACKs), both
// ways at once, with pauses in which both ends freeze, over a wire that
// loses 10% of datagrams, arrive intact and in order. A conversation
// rebuilt with fresh sequence numbers would drop everything (KCP takes
// only the segments it expects).
func TestFrozenConversation(t *testing.T) {
	a, b := freezingPair(t, lossy(10))
	if !frozen(a) || !frozen(b) {
		t.Fatal("a fresh conversation is not frozen")
	}
	for round, size := range []int{5, 1300, 1400, 40_000, 200_000, 7} {
		msgs := [2][]byte{make([]byte, size), make([]byte, size+round)}
		rand.Read(msgs[0])
		rand.Read(msgs[1])
		errs := make(chan error, 4)
		for i, pair := range [][2]*arqConn{{a, b}, {b, a}} {
			go func() { _, err := pair[0].Write(msgs[i]); errs <- err }()
			go func() {
				got := make([]byte, len(msgs[i]))
				_, err := io.ReadFull(pair[1], got)
				if err == nil && !bytes.Equal(got, msgs[i]) {
					err = io.ErrUnexpectedEOF
				}
				errs <- err
			}()
		}
		for range 4 {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatalf("round %d (%d bytes): %v", round, size, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d (%d bytes): stuck", round, size)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for !frozen(a) || !frozen(b) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: idle conversation not frozen (a %v, b %v)", round, frozen(a), frozen(b))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if a.freezeN.Load() < 6 || b.freezeN.Load() < 6 {
		t.Fatalf("froze %d and %d times, want at least once per round", a.freezeN.Load(), b.freezeN.Load())
	}
}
