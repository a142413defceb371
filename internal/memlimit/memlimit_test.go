package memlimit

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestTarget(t *testing.T) {
	for _, c := range []struct{ base, live, own, want int64 }{
		{14 << 20, 4 << 20, 2 << 20, 14 << 20},  // room: the configured limit
		{14 << 20, 10 << 20, 3 << 20, 18 << 20}, // live heap needs more
		{14 << 20, 8 << 20, 2 << 20, 14 << 20},  // exactly enough
	} {
		if got := Target(c.base, c.live, c.own); got != c.want {
			t.Errorf("Target(%d, %d, %d) = %d, want %d", c.base, c.live, c.own, got, c.want)
		}
	}
}

// TestLimitBelowLiveHeapDoesNotSpin: a process whose live heap (32 MiB)
// is far above its configured limit (4 MiB) churns 256 MiB of garbage.
// With the limit left at 4 MiB the collector runs back to back (one
// collection per few hundred KiB allocated); with the guard the limit in
// force rises above the live heap after a collection, collections stay
// a handful, and once the live heap is dropped the limit comes back down.
func TestLimitBelowLiveHeapDoesNotSpin(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	churn := func() uint32 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var sink []byte
		for range 256 << 10 {
			sink = make([]byte, 1024)
		}
		_ = sink
		runtime.ReadMemStats(&after)
		return after.NumGC - before.NumGC
	}
	live := make([][]byte, 32)
	for i := range live {
		live[i] = make([]byte, 1<<20)
		for j := range live[i] {
			live[i][j] = byte(j)
		}
	}

	// Without the guard: the limit alone.
	debug.SetMemoryLimit(4 << 20)
	spinning := churn()

	g := Start(4 << 20)
	defer g.Stop()
	runtime.GC() // the guard looks after a collection
	waitFor(t, func() bool { return debug.SetMemoryLimit(-1) > 32<<20 })
	guarded := churn()
	t.Logf("collections while churning 256 MiB with 32 MiB live and a 4 MiB limit: %d alone, %d guarded (limit in force %d MiB)",
		spinning, guarded, debug.SetMemoryLimit(-1)>>20)
	if guarded > 40 || guarded*3 > spinning {
		t.Errorf("guarded: %d collections (alone %d), want a handful", guarded, spinning)
	}
	if g.Raised() == 0 {
		t.Error("Raised() = 0 after the limit went up")
	}

	runtime.KeepAlive(live)
	live = nil
	runtime.GC()
	runtime.GC()
	// Back down: the configured limit, or what the runtime's own memory
	// needs (more than 4 MiB under the race detector), far below 48 MiB.
	waitFor(t, func() bool { return debug.SetMemoryLimit(-1) < 16<<20 })
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("limit in force %d bytes: condition not reached in 5 s", debug.SetMemoryLimit(-1))
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
