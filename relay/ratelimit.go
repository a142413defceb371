package relay

import (
	"net/netip"
	"sync"
	"time"
)

// Handshake rate per source address: a router reconnecting needs one
// handshake a second at most (its retry interval); the rest is for
// carrier-grade NATs that put many agents behind one address (after a relay
// restart, 100 of them are all back within about 5 s).
const (
	handshakeRate  = 10.0 // tokens per second per source address
	handshakeBurst = 50.0
	// limiterMaxAddrs bounds the table; when a spoofed-source flood fills
	// it, new addresses share one bucket until the next sweep.
	limiterMaxAddrs = 65536
)

// sourceLimiter is a token bucket per source address, consulted before a
// handshake is queued, so one flooding address cannot keep the handshake
// queue full and lock every other agent out. mu guards buckets.
type sourceLimiter struct {
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	shared  bucket // for addresses beyond limiterMaxAddrs
}

type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) take(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens, b.last = handshakeBurst, now
	}
	b.tokens = min(handshakeBurst, b.tokens+now.Sub(b.last).Seconds()*handshakeRate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// allow reports whether a handshake from addr may be queued now.
func (l *sourceLimiter) allow(addr netip.Addr, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[netip.Addr]*bucket{}
	}
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= limiterMaxAddrs {
			return l.shared.take(now)
		}
		b = &bucket{}
		l.buckets[addr] = b
	}
	return b.take(now)
}

// sweep forgets addresses whose bucket has refilled: they are idle.
func (l *sourceLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for a, b := range l.buckets {
		if now.Sub(b.last).Seconds()*handshakeRate+b.tokens >= handshakeBurst {
			delete(l.buckets, a)
		}
	}
}
