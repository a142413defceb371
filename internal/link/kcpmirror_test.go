package link

import (
	"io"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtaci/kcp-go/v5"
)

// TestKCPMirrors checks kcpHead against kcp.KCP and kcpSegment against
// kcp-go's segment: the same fields in the same order at the same
// offsets, of the same kind and size (names compared without case and
// underscores). A kcp-go upgrade that changes either fails here.
func TestKCPMirrors(t *testing.T) {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	kind := func(k reflect.Kind) reflect.Kind {
		if k == reflect.UnsafePointer {
			return reflect.Pointer
		}
		return k
	}
	compare := func(mirror, real reflect.Type, all bool) {
		t.Helper()
		if all && mirror.Size() != real.Size() {
			t.Fatalf("%s is %d bytes, kcp-go's %s %d", mirror, mirror.Size(), real, real.Size())
		}
		for i := range mirror.NumField() {
			m, r := mirror.Field(i), real.Field(i)
			if norm(m.Name) != norm(r.Name) || m.Offset != r.Offset || kind(m.Type.Kind()) != kind(r.Type.Kind()) || m.Type.Size() != r.Type.Size() {
				t.Fatalf("%s.%s (%s at %d) does not mirror kcp-go's %s.%s (%s at %d)",
					mirror, m.Name, m.Type.Kind(), m.Offset, real, r.Name, r.Type.Kind(), r.Offset)
			}
		}
	}
	kcpType := reflect.TypeFor[kcp.KCP]()
	compare(reflect.TypeFor[kcpHead](), kcpType, false)
	buf, ok := kcpType.FieldByName("snd_buf")
	if !ok {
		t.Fatal("kcp.KCP has no snd_buf")
	}
	elems, ok := buf.Type.Elem().FieldByName("elements")
	if !ok || elems.Type.Kind() != reflect.Slice {
		t.Fatalf("kcp-go's send buffer is %s, not a ring with an elements slice", buf.Type)
	}
	compare(reflect.TypeFor[kcpSegment](), elems.Type.Elem(), true)
}

// segmentIntoTheVoid writes one segment on a link whose wire loses
// everything and returns the sending end and a count of its datagrams.
func segmentIntoTheVoid(t *testing.T) (*arqConn, *atomic.Int64) {
	sent := new(atomic.Int64)
	a, _ := arqPair(t, DefaultTuning(), func() bool { sent.Add(1); return true })
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	return a, sent
}

// TestARQTimerFollowsRetransmissionTimeout: a segment the peer never
// acknowledges is retransmitted on KCP's timeout (200 ms before any RTT
// sample, growing by half each time), and the driver's timer wakes for
// those retransmissions, not every 10 ms flush interval in between.
func TestARQTimerFollowsRetransmissionTimeout(t *testing.T) {
	a, sent := segmentIntoTheVoid(t)
	time.Sleep(1500 * time.Millisecond)
	// Timeouts at 0.2, 0.5, 0.95 s (and 1.6): 3 retransmissions in the
	// window; waking every interval would be about 150 flushes.
	if n := sent.Load(); n < 3 {
		t.Fatalf("%d datagrams in 1.5 s: the segment was not retransmitted on its timeouts", n)
	}
	if n := a.ticks.Load(); n > 12 {
		t.Fatalf("the timer fired %d times in 1.5 s for %d transmissions: it wakes on the interval, not on the timeout", n, sent.Load())
	}
	t.Logf("%d transmissions, %d timer flushes", sent.Load(), a.ticks.Load())
}

// TestResendNowAfterMove: a segment that backed off while the wire lost
// everything (timeouts at 0.2, 0.5, 0.95, then 1.6 s) goes out again at
// once when the peer moves (resendNow, which PacketConn calls after a
// validated move), and its next timeout is KCP's current one again, not
// the backed-off 0.65 s.
func TestResendNowAfterMove(t *testing.T) {
	a, sent := segmentIntoTheVoid(t)
	time.Sleep(1050 * time.Millisecond)
	before := sent.Load()
	a.resendNow()
	if n := sent.Load(); n != before+1 {
		t.Fatalf("resendNow sent %d datagrams, want the one segment in flight", n-before)
	}
	time.Sleep(350 * time.Millisecond) // the old schedule: next at 1.6 s, 0.55 s from now
	if n := sent.Load(); n < before+2 {
		t.Fatalf("no retransmission within 350 ms of the move: the backed-off timeout was kept")
	}
}

// TestResendWhenPeerHeardAgain: after an exchange, the wire loses
// everything while a segment backs off (each timeout half of KCP's
// current one longer than the last); once the gap between its
// retransmissions passes 0.4 s, the wire comes back right after one of
// them and the peer is heard again (a keepalive, nothing KCP): the
// segment goes out at once and arrives, not a whole backed-off timeout
// later. This is a NAT that forgot the agent's mapping and gave the next
// one the same port: no move to see, only the silence.
func TestResendWhenPeerHeardAgain(t *testing.T) {
	var cut atomic.Bool
	var mu sync.Mutex
	var lost []time.Time // when each datagram the cut wire lost was sent
	a, b := arqPair(t, DefaultTuning(), func() bool {
		if !cut.Load() {
			return false
		}
		mu.Lock()
		lost = append(lost, time.Now())
		mu.Unlock()
		return true
	})
	transfer(t, a, b, 4) // both ends have heard the other
	transfer(t, b, a, 4)
	cut.Store(true)
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	var gap time.Duration
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(lost)
		if n >= 2 {
			gap = lost[n-1].Sub(lost[n-2])
		}
		recent := n > 0 && time.Since(lost[n-1]) < 20*time.Millisecond
		mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no retransmission gap of 0.4 s within 20 s (%d datagrams lost)", n)
		}
		if gap > 400*time.Millisecond && recent {
			break
		}
	}
	cut.Store(false)
	heard := time.Now()
	if err := b.pc.SendKeepalive(1); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	took := time.Since(heard)
	t.Logf("last retransmission gap %v; the segment arrived %v after the peer was heard again", gap.Round(time.Millisecond), took.Round(100*time.Microsecond))
	if took > gap/2 {
		t.Fatalf("the segment arrived %v after the peer was heard again, its last retransmission gap was %v: it waited for its backed-off timeout", took, gap)
	}
}
