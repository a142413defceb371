package secure

import "testing"

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	steps := []struct {
		counter uint64
		want    bool
	}{
		{0, true}, {0, false}, {1, true}, {5, true}, {3, true}, {3, false},
		{5000, true}, {5000 - windowSize + 1, true}, {5000 - windowSize, false}, {4999, true},
		{1 << 40, true}, {5000, false}, {1<<40 - 1, true}, {1<<40 - 1, false},
	}
	for i, s := range steps {
		if got := w.update(s.counter); got != s.want {
			t.Fatalf("step %d: update(%d) = %v, want %v", i, s.counter, got, s.want)
		}
	}
}

// TestReplayWindowSliding walks far forward word by word and checks that
// bits left from an earlier lap of the ring never refuse a new counter.
func TestReplayWindowSliding(t *testing.T) {
	var w replayWindow
	for c := uint64(0); c < 64*windowWords*5; c += 63 {
		if !w.update(c) {
			t.Fatalf("fresh counter %d refused", c)
		}
		if w.update(c) {
			t.Fatalf("counter %d accepted twice", c)
		}
	}
}
