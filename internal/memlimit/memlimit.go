// Package memlimit applies the configured soft memory limit (memory_limit)
// and keeps it soft.
//
// Go's soft limit makes the collector run as often as it must to keep the
// runtime's memory under the limit. That is what a router wants while the
// live heap is well below it: bulk transfers produce garbage quickly, and
// without a limit the heap grows to twice what is live before a
// collection. But a limit below what the live heap needs (many held
// connections, a burst of streams) turns into collections back to back,
// up to half the CPU by the runtime's own cap, on a device whose CPU is
// the tunnel's bottleneck. So after every collection the limit in force
// is set to the configured one or, when the live heap needs more, to one
// and a half times the live heap plus the runtime's own memory (stacks,
// metadata): the collector then runs at most about twice as often as with
// GOGC=100 and no limit, never continuously, and the limit comes back
// down as soon as the live heap shrinks. Status shows the limit in force.
package memlimit

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Guard keeps a soft limit of at least the configured base.
type Guard struct {
	base    int64
	current atomic.Int64
	raised  atomic.Uint64 // times the limit went above base
	stopped atomic.Bool
	samples []metrics.Sample
}

// names are the metrics check reads after each collection, in the order
// it indexes them.
var names = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
}

// Start sets the soft limit to base and keeps it at Target after every
// collection. base <= 0 sets nothing and returns nil.
func Start(base int64) *Guard {
	if base <= 0 {
		return nil
	}
	g := &Guard{base: base, samples: make([]metrics.Sample, len(names))}
	for i, n := range names {
		g.samples[i].Name = n
	}
	g.current.Store(base)
	debug.SetMemoryLimit(base)
	g.arm()
	return g
}

// Stop ends the checks after collections; the limit in force stays.
func (g *Guard) Stop() { g.stopped.Store(true) }

// Raised reports how many times the limit went above the configured one.
func (g *Guard) Raised() uint64 { return g.raised.Load() }

// arm runs check once after the next collection: a cleanup of an object
// nothing references runs once a collection has found it unreachable.
// Each check arms the next, so a process that allocates nothing (an idle
// router) pays nothing until its next collection.
func (g *Guard) arm() {
	runtime.AddCleanup(new([16]byte), func(g *Guard) { g.check() }, g)
}

func (g *Guard) check() {
	if g.stopped.Load() {
		return
	}
	defer g.arm()
	metrics.Read(g.samples)
	v := func(i int) int64 { return int64(g.samples[i].Value.Uint64()) }
	live := v(0)
	runtimeOwn := v(1) - v(2) - v(3) - v(4) - v(5)
	next := Target(g.base, live, runtimeOwn)
	cur := g.current.Load()
	// Only a change of more than an eighth is worth a call (it takes the
	// heap lock).
	if next == cur || (next > g.base && abs(next-cur) < cur/8) {
		return
	}
	if next > g.base && cur == g.base {
		g.raised.Add(1)
	}
	g.current.Store(next)
	debug.SetMemoryLimit(next)
}

// Target is the limit for a live heap of live bytes and runtimeOwn bytes
// of stacks and metadata: base, or live × 1.5 + runtimeOwn when that is
// more.
func Target(base, live, runtimeOwn int64) int64 {
	return max(base, live+live/2+runtimeOwn)
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
