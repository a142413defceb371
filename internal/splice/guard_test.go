package splice

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// TestGuardSlowReaderLosesNothing: a reader that pauses longer than After
// but comes back gets every byte, once, and the slot is returned.
func TestGuardSlowReaderLosesNothing(t *testing.T) {
	w, r := tcpPair(t)
	g := NewGuard(1)
	g.After, g.Grace, g.Limit = 20*time.Millisecond, 0, 10*time.Second
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		var out []byte
		buf := make([]byte, 256<<10)
		for {
			n, err := r.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				got <- out
				return
			}
			if len(out)%(1<<20) < n { // about once a MiB, stall a while
				time.Sleep(150 * time.Millisecond)
			}
		}
	}()
	n, err := g.Write(w, payload)
	if err != nil || n != len(payload) {
		t.Fatalf("write: got %d, %v; want %d, nil", n, err, len(payload))
	}
	w.CloseWrite()
	if out := <-got; sha256.Sum256(out) != sha256.Sum256(payload) {
		t.Fatalf("reader got %d bytes with another hash, want %d", len(out), len(payload))
	}
	if f := g.Free(); f != 1 {
		t.Fatalf("free slots after the write: got %d, want 1", f)
	}
}

// TestGuardStalled: the first stalled writer takes the only slot and is
// given up on after Limit; a second one finds no slot and fails after
// Grace.
func TestGuardStalled(t *testing.T) {
	g := NewGuard(1)
	g.After, g.Grace, g.Limit = 50*time.Millisecond, 150*time.Millisecond, 800*time.Millisecond
	big := make([]byte, 64<<20) // more than any socket buffer
	first := make(chan error, 1)
	w1, _ := tcpPair(t)
	start := time.Now()
	go func() { _, err := g.Write(w1, big); first <- err }()
	time.Sleep(200 * time.Millisecond) // w1 has stalled and holds the slot
	if f := g.Free(); f != 0 {
		t.Fatalf("free slots while a writer is stalled: got %d, want 0", f)
	}
	w2, _ := tcpPair(t)
	t2 := time.Now()
	if _, err := g.Write(w2, big); !errors.Is(err, ErrStalled) {
		t.Fatalf("second stalled writer: got %v, want ErrStalled", err)
	}
	if d := time.Since(t2); d < g.Grace || d > 5*time.Second {
		t.Errorf("second stalled writer took %v to fail, want about Grace (%v)", d, g.Grace)
	}
	if err := <-first; !errors.Is(err, ErrStalled) {
		t.Fatalf("first stalled writer: got %v, want ErrStalled", err)
	}
	if d := time.Since(start); d < g.Limit {
		t.Errorf("first stalled writer failed after %v, before Limit %v", d, g.Limit)
	}
	if f := g.Free(); f != 1 {
		t.Fatalf("free slots at the end: got %d, want 1", f)
	}
}
