package agent

import (
	"testing"
	"time"
)

// TestNetChangeRateLimit: a flapping interface (a change every 50 ms for
// 2.5 s) applies at most one change a second, and the last change of the
// storm is not lost: it is applied within a second of the storm's end.
func TestNetChangeRateLimit(t *testing.T) {
	var n netChange
	applied := make(chan time.Time, 100)
	done := make(chan struct{})
	ch := n.changed() // before the first notification
	go func() {
		for {
			select {
			case <-ch:
				applied <- time.Now()
				ch = n.changed()
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	start := time.Now()
	var last time.Time
	for time.Since(start) < 2500*time.Millisecond {
		last = time.Now()
		n.notify(last)
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(netChangeEvery + 200*time.Millisecond)
	var times []time.Time
	for len(applied) > 0 {
		times = append(times, <-applied)
	}
	if len(times) < 3 || len(times) > 4 {
		t.Fatalf("%d changes applied in a 2.5 s storm of %d notifications, want 3-4 (one a second)", len(times), 50)
	}
	if first := times[0].Sub(start); first > 100*time.Millisecond {
		t.Errorf("first change applied after %v, want at once", first)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < netChangeEvery-20*time.Millisecond {
			t.Errorf("changes %d and %d applied %v apart, want >= %v", i-1, i, gap, netChangeEvery)
		}
	}
	if end := times[len(times)-1]; end.Before(last) {
		t.Errorf("the storm's last notification (%v) was not applied (last apply %v)", last.Sub(start), end.Sub(start))
	}
	if got := n.applied(); got != uint64(len(times)) {
		t.Errorf("applied() = %d, watcher saw %d", got, len(times))
	}
}
