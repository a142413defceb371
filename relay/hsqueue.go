package relay

import (
	"context"
	"net/netip"
	"runtime"
	"sync"
)

// The handshake queues. Two X25519-heavy handshakes cannot both be worth
// doing for one source address and port at once: an agent re-sends its
// initiation until answered (the same message; a new one when a cookie
// arrives) and takes an answer to any of its recent initiations, so while
// one initiation from an address waits in a queue, a retry from that
// address is dropped (counted as handshake_coalesced) instead of queued;
// once answered, its copies are answered again without a queue
// (resend.go). Without this, a backlog longer
// than a second, as after a restart under a thousand agents, made the
// workers answer each agent two or three times, and every answer builds a
// pending session whose KCP link and smux are allocated up front. The
// queued set holds only what the queues hold, so it is bounded by them.
//
// One worker per core drains the queues: handshakes are independent and
// CPU-bound, and a relay that comes back under a fleet has nothing else
// to do first.

// queuedSet is the source addresses with an initiation in a queue, per
// queue (proven or not); mu guards it.
type queuedSet struct {
	mu sync.Mutex
	m  map[queuedKey]struct{}
}

type queuedKey struct {
	from   netip.AddrPort
	proven bool
}

// add marks from as waiting in its queue; false if it already was.
func (w *queuedSet) add(from netip.AddrPort, proven bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[queuedKey]struct{}{}
	}
	k := queuedKey{from, proven}
	if _, ok := w.m[k]; ok {
		return false
	}
	w.m[k] = struct{}{}
	return true
}

func (w *queuedSet) remove(from netip.AddrPort, proven bool) {
	w.mu.Lock()
	delete(w.m, queuedKey{from, proven})
	w.mu.Unlock()
}

// enqueue queues an admitted UDP initiation for the workers, unless one
// from the same address waits in the same queue or the queue is full.
func (r *Relay) enqueue(b []byte, from netip.AddrPort, proven bool) {
	if !r.queued.add(from, proven) {
		r.stats.HandshakeCoalesced.Add(1)
		return
	}
	q := r.handshakes
	if proven {
		q = r.proven
	}
	select {
	case q <- initMsg{b: append([]byte(nil), b...), from: from, proven: proven}:
	default:
		r.queued.remove(from, proven)
		r.stats.HandshakeDropped.Add(1)
	}
}

// handshakeWorkers answers queued UDP handshakes, one worker per core,
// until ctx ends.
func (r *Relay) handshakeWorkers(ctx context.Context, wg *sync.WaitGroup) {
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() { r.handshakeWorker(ctx) })
	}
}

// handshakeWorker answers queued UDP handshakes until ctx ends; those
// whose source address is proven go first. The address leaves the
// queued set once its answer is sent, so a retry that crossed the
// answer is not worked on too.
func (r *Relay) handshakeWorker(ctx context.Context) {
	for {
		var m initMsg
		select {
		case m = <-r.proven:
		default:
			select {
			case <-ctx.Done():
				return
			case m = <-r.proven:
			case m = <-r.handshakes:
			}
		}
		r.handleInitUDP(ctx, m.b, m.from)
		r.queued.remove(m.from, m.proven)
	}
}
