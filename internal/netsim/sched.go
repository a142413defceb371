package netsim

import (
	"container/heap"
	"sync"
	"time"
)

// scheduler runs delayed deliveries (a NAT uplink's one-way delay) in due
// order on one goroutine per simulation, so a thousand delayed packets
// cost one timer, not a thousand, and Close has one goroutine to stop.
// Deliveries never block (a full socket queue drops), so one slow reader
// cannot hold back the others.
type scheduler struct {
	mu     sync.Mutex // guards events, seq and closed
	events eventHeap
	seq    uint64
	closed bool

	wake chan struct{} // an earlier event arrived; capacity 1
	done chan struct{} // closed by close
	wg   sync.WaitGroup
}

type event struct {
	at  time.Time
	seq uint64 // ties keep submission order
	f   func()
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// newScheduler starts the goroutine; close stops it.
func newScheduler() *scheduler {
	s := &scheduler{wake: make(chan struct{}, 1), done: make(chan struct{})}
	s.wg.Go(s.run)
	return s
}

// after runs f once d has passed; after close, f is dropped.
func (s *scheduler) after(d time.Duration, f func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.seq++
	heap.Push(&s.events, event{at: time.Now().Add(d), seq: s.seq, f: f})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run exits when close is called; events still queued are dropped, as
// packets in flight are lost when a network goes away.
func (s *scheduler) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		var due []func()
		for len(s.events) > 0 && !s.events[0].at.After(now) {
			due = append(due, heap.Pop(&s.events).(event).f)
		}
		next := time.Hour
		if len(s.events) > 0 {
			next = s.events[0].at.Sub(now)
		}
		s.mu.Unlock()
		for _, f := range due {
			f()
		}
		t.Reset(next)
		select {
		case <-s.done:
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

// close stops the goroutine and returns after it has exited.
func (s *scheduler) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.events = nil
	s.mu.Unlock()
	close(s.done)
	s.wg.Wait()
}
