package relay

import (
	"net/netip"
	"sync"
	"time"
)

// Handshake budgets. A router reconnecting needs one handshake a second
// at most (its retry interval); the rest of the per-IP budget is for
// carrier-grade NATs that put many agents behind one address (after a relay
// restart, 100 of them are all back within about 5 s). A handshake whose
// mac2 proves its address and port is charged to that address and port
// instead (see handshake.go): one agent, so a smaller budget.
const (
	handshakeRate  = 10.0 // tokens per second per source IP
	handshakeBurst = 50.0
	provenRate     = 2.0 // tokens per second per proven source address and port
	provenBurst    = 5.0
	// limiterMaxAddrs bounds each table; when a spoofed-source flood fills
	// it, new sources share one bucket until the next sweep.
	limiterMaxAddrs = 65536
)

// sourceLimiter is a token bucket per source, consulted before a handshake
// is queued, so one flooding address cannot keep the handshake queue full
// and lock every other agent out. mu guards every field.
type sourceLimiter struct {
	mu       sync.Mutex
	byIP     map[netip.Addr]*bucket
	byPort   map[netip.AddrPort]*bucket
	sharedIP bucket // for sources beyond limiterMaxAddrs
	sharedAP bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) full(now time.Time, rate, burst float64) bool {
	return now.Sub(b.last).Seconds()*rate+b.tokens >= burst
}

// bucketFor returns the bucket of k in m, or shared when m is full.
func bucketFor[K comparable](m map[K]*bucket, k K, shared *bucket) *bucket {
	if b := m[k]; b != nil {
		return b
	}
	if len(m) >= limiterMaxAddrs {
		return shared
	}
	b := &bucket{}
	m[k] = b
	return b
}

// allow reports whether an unproven handshake from addr may be queued now.
func (l *sourceLimiter) allow(addr netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byIP == nil {
		l.byIP = map[netip.Addr]*bucket{}
	}
	return bucketFor(l.byIP, addr, &l.sharedIP).take(now, handshakeRate, handshakeBurst)
}

// allowProven reports whether a handshake whose mac2 proved it comes from
// ap may be queued now.
func (l *sourceLimiter) allowProven(ap netip.AddrPort, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byPort == nil {
		l.byPort = map[netip.AddrPort]*bucket{}
	}
	return bucketFor(l.byPort, ap, &l.sharedAP).take(now, provenRate, provenBurst)
}

// sweep forgets sources whose bucket has refilled: they are idle.
func (l *sourceLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for a, b := range l.byIP {
		if b.full(now, handshakeRate, handshakeBurst) {
			delete(l.byIP, a)
		}
	}
	for a, b := range l.byPort {
		if b.full(now, provenRate, provenBurst) {
			delete(l.byPort, a)
		}
	}
}
