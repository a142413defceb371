package relay

import (
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Returning memory after a wave. A relay's memory comes and goes in
// waves: a fleet connecting (every link awake while its exposures are
// probed), the same links parking ten seconds later, a restart's
// sessions closing. What a wave frees is garbage only once a collection
// has run, and a relay whose agents idle allocates so little that none
// may run for two minutes (the runtime's forced collection); even then
// the runtime keeps free pages up to its heap goal, twice the live heap.
// So a relay that served a burst keeps its peak resident while idle,
// about three times what its idle sessions need (issue 12: 78-117 KiB
// of RSS per parked agent, 11 KiB of it live).
//
// The reclaimer estimates what parks and closed sessions freed and, once
// that is a quarter of the live heap (and at least reclaimMin), collects
// and returns free pages to the OS at once (debug.FreeOSMemory). It runs
// at most every reclaimEvery: one collection costs about a millisecond
// per 10 MB of live heap, and a fleet whose links park and wake all the
// time would otherwise collect on every check.

const (
	// parkedBytes is what one park frees: a data conversation's KCP
	// state and its smux session (about 50 KB, measured).
	parkedBytes = 48 << 10
	// closedSessionBytes is what a closed session frees at least: its
	// sealed conn, link and exposures (a parked agent's live heap is
	// about 11 KB; an awake one's adds parkedBytes).
	closedSessionBytes = 16 << 10
	// reclaimMin is the least estimate worth a collection.
	reclaimMin = 4 << 20
	// reclaimEvery is the shortest time between two reclaims.
	reclaimEvery = 15 * time.Second
)

type reclaimer struct {
	freed  atomic.Int64  // estimated bytes freed since the last reclaim
	count  atomic.Uint64 // reclaims run, for status
	last   time.Time     // the last reclaim (check's goroutine only)
	sample []metrics.Sample
}

// add records an estimated n bytes freed.
func (c *reclaimer) add(n int64) { c.freed.Add(n) }

// check reclaims when enough was freed; the relay's once-a-second sweep
// calls it, and waits for the collection (tens of milliseconds with ten
// thousand agents).
func (c *reclaimer) check(now time.Time) {
	if now.Sub(c.last) < reclaimEvery {
		return
	}
	freed := c.freed.Load()
	if freed < reclaimMin {
		return
	}
	if c.sample == nil {
		c.sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	}
	metrics.Read(c.sample)
	if c.sample[0].Value.Kind() == metrics.KindUint64 && uint64(freed) < c.sample[0].Value.Uint64()/4 {
		return
	}
	c.freed.Add(-freed)
	c.last = now
	c.count.Add(1)
	debug.FreeOSMemory()
}
