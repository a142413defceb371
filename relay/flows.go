package relay

import (
	"container/list"
	"encoding/binary"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

const (
	// maxFlows bounds the client addresses one UDP exposure tracks. When
	// it is reached a new client still gets in: a flow is evicted for it
	// (see evictLocked), so a flood of spoofed sources cannot lock
	// legitimate clients out.
	maxFlows = 1024
	// flowQueue and flowQueueBytes bound the datagrams waiting for one
	// flow's stream. A client that sends faster than its stream drains
	// loses datagrams, as it would on a congested link; it never blocks
	// the socket reader, so one busy client cannot starve the others.
	// 256 KiB holds 128 full-MTU datagrams (2 KiB class each).
	flowQueue      = 256
	flowQueueBytes = 256 << 10
	// exposureQueueBytes bounds the datagrams waiting in all flows of one
	// exposure together: without it 1024 flows × 256 KiB could queue
	// 256 MiB. 4 MiB is 2,000 full-MTU datagrams in flight, more than a
	// smux session's 4 MiB window lets the agent absorb anyway.
	exposureQueueBytes = 4 << 20
	// exposureReplyBytes bounds the buffers of agent replies being read
	// in all flows of one exposure. A reply's buffer is taken when its
	// 2-byte length arrives and held until its last byte does; without a
	// bound, 1024 flows each half-way through a 64 KiB reply would hold
	// 64 MiB. Past it a reply is read into a small shared buffer and
	// dropped, as a congested link would.
	exposureReplyBytes = 4 << 20
	// maxOpening bounds the flows of one exposure that are opening their
	// stream (SYN and header) at once. Opening waits for the link: when a
	// flood creates flows faster than the link carries the opens, the
	// flows wait in the table (bounded by maxFlows, and an evicted one
	// leaves without costing the link anything) instead of piling up
	// goroutines and smux streams in front of the link. 64 opens of a few
	// dozen bytes each are far below one KCP window (1024 packets).
	maxOpening = 64
)

// flowTable maps client addresses of one UDP exposure to their streams.
//
// Eviction order: the flows that never got an answer from the agent,
// oldest first (a spoofed source never answers, and a service that
// ignores junk never answers it), then the least recently active flow
// either way. Both orders are lists kept in step with every datagram, so
// picking a victim is O(1) however hard the flood.
type flowTable struct {
	e *exposure

	mu         sync.Mutex // guards flows, lru, unanswered and each flow's tableState
	flows      map[netip.AddrPort]*flow
	lru        list.List // every flow; front = most recently active
	unanswered list.List // flows without an answer yet; front = newest

	// queued is the buffer bytes (whole size classes) of the datagrams
	// waiting in all flows. Only readLoop adds to it, so its check-then-add
	// cannot overshoot exposureQueueBytes.
	queued atomic.Int64
	// replying is the buffer bytes of replies being read (see replies).
	replying atomic.Int64
	opening  chan struct{} // semaphore of maxOpening slots
}

func newFlowTable(e *exposure) *flowTable {
	return &flowTable{e: e, flows: map[netip.AddrPort]*flow{}, opening: make(chan struct{}, maxOpening)}
}

func (e *exposure) flowCount() int {
	if e.fl == nil {
		return 0
	}
	e.fl.mu.Lock()
	defer e.fl.mu.Unlock()
	return len(e.fl.flows)
}

func (t *flowTable) readLoop() {
	// One read buffer per exposure; each datagram is framed in place
	// (2-byte length first) and copied into a buffer of its size class.
	buf := make([]byte, 2+protocol.MaxUDPPayload)
	stats := &t.e.s.r.stats
	for {
		n, from, err := t.e.udp.ReadFromUDPAddrPort(buf[2:])
		if err != nil {
			if isClosed(err) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		f := t.lookup(from)
		binary.BigEndian.PutUint16(buf, uint16(n))
		if !t.enqueue(f, buf[:2+n]) {
			stats.DatagramsDropped.Add(1)
		}
	}
}

// lookup returns the flow of a client address, creating it (and evicting
// another when the table is full) if needed, and marks it active.
func (t *flowTable) lookup(from netip.AddrPort) *flow {
	now := time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.flows[from]; f != nil {
		f.last = now
		t.lru.MoveToFront(f.lruElem)
		return f
	}
	f := t.addLocked(from, now)
	t.e.s.r.sessions.Go(func() { t.serve(f) })
	return f
}

// addLocked puts a new flow in the table, evicting one if it is full: a
// new client is never refused.
func (t *flowTable) addLocked(from netip.AddrPort, now int64) *flow {
	if len(t.flows) >= maxFlows {
		t.evictLocked()
	}
	f := newFlow(from)
	f.last = now
	f.lruElem = t.lru.PushFront(f)
	f.unansweredElem = t.unanswered.PushFront(f)
	t.flows[from] = f
	return f
}

// evictLocked ends one flow to make room: the oldest that never got an
// answer, else the least recently active.
func (t *flowTable) evictLocked() {
	victim := t.unanswered.Back()
	if victim == nil {
		victim = t.lru.Back()
	}
	if victim == nil {
		return
	}
	f := victim.Value.(*flow)
	t.removeLocked(f)
	t.stop(f)
	t.e.s.r.stats.FlowsEvicted.Add(1)
}

// removeLocked takes f out of the table; its goroutines end on their own
// once f is stopped.
func (t *flowTable) removeLocked(f *flow) {
	if t.flows[f.client] != f {
		return
	}
	delete(t.flows, f.client)
	t.lru.Remove(f.lruElem)
	if f.unansweredElem != nil {
		t.unanswered.Remove(f.unansweredElem)
		f.unansweredElem = nil
	}
}

// answered records traffic from the agent to f's client.
func (t *flowTable) answered(f *flow) {
	now := time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.flows[f.client] != f {
		return // evicted or expired meanwhile
	}
	f.last = now
	t.lru.MoveToFront(f.lruElem)
	if f.unansweredElem != nil {
		t.unanswered.Remove(f.unansweredElem)
		f.unansweredElem = nil
	}
}

// expireLoop ends flows idle longer than the relay's UDP flow timeout.
// Idle flows sit at the back of the LRU list, so each pass looks only at
// the flows it expires (and one more).
//
// When the table has shrunk by releaseAfter flows since its high mark (a
// flood's flows expired, evicted or closed by the agent), the freed memory
// goes back to the system. Left to itself the runtime does that only after
// its next collection, which an idle relay reaches by the 2-minute forced
// GC, and then gradually: the relay's RSS stayed at its flood level for
// two minutes. The count is taken before this pass expires anything,
// because a stopped flow's goroutine and stream end a moment later.
func (t *flowTable) expireLoop() {
	idle := t.e.s.r.cfg.Load().flowIdle()
	tick := time.NewTicker(idle / 4)
	defer tick.Stop()
	high := 0
	for {
		select {
		case <-t.e.end:
			return
		case <-tick.C:
			now := time.Now().UnixNano()
			t.mu.Lock()
			n := len(t.flows)
			for el := t.lru.Back(); el != nil; el = t.lru.Back() {
				f := el.Value.(*flow)
				if time.Duration(now-f.last) <= idle {
					break
				}
				t.removeLocked(f)
				t.stop(f)
			}
			t.mu.Unlock()
			high = max(high, n)
			if high-n >= releaseAfter {
				debug.FreeOSMemory()
				high = n
			}
		}
	}
}

// releaseAfter is how far the table must shrink before the relay hands
// memory back to the system: a quarter of a full table, so the full GC
// this costs never runs for ordinary client churn.
const releaseAfter = maxFlows / 4

func (t *flowTable) closeAll() {
	t.mu.Lock()
	for _, f := range t.flows {
		t.removeLocked(f)
		t.stop(f)
	}
	t.mu.Unlock()
}
