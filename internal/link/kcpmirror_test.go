package link

import (
	"reflect"
	"strings"
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
