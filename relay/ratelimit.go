package relay

import (
	"net/netip"
	"sync"
	"time"
)

// Handshake budgets. A router reconnecting needs one handshake a second
// at most (its retry interval). An unproven handshake is charged to its
// source IP, which anyone can forge, so that budget is small and fixed;
// when it is spent the sender gets a cookie. A handshake whose mac2 proves
// its address and port (see handshake.go) is charged twice: to that
// address and port (one agent, so a small budget), and to its IP, whose
// proven budget grows with the agents live or last seen there (agentsat.go):
// a thousand routers behind one carrier-grade NAT all come back in the
// first second after a restart, while an address with no agents, however
// many ports it proves, gets the base and cannot fill the workers' queue.
const (
	handshakeRate  = 10.0 // tokens per second per source IP
	handshakeBurst = 50.0
	provenRate     = 2.0 // tokens per second per proven source address and port
	provenBurst    = 5.0
	// Proven handshakes per source IP: the base, plus as much again per
	// agent live or last seen at the IP.
	provenIPRate        = 20.0
	provenIPBurst       = 100.0
	provenPerAgentRate  = 1.0
	provenPerAgentBurst = 2.0
	// limiterMaxAddrs bounds each table; when a spoofed-source flood fills
	// it, new sources share one bucket until the next sweep.
	limiterMaxAddrs = 65536
)

// sourceLimiter is a token bucket per source, consulted before a handshake
// is queued, so one flooding address cannot keep the handshake queue full
// and lock every other agent out.
type sourceLimiter struct {
	byIP       rateTable[netip.Addr]
	byPort     rateTable[netip.AddrPort]
	provenByIP rateTable[netip.Addr]
}

// allow reports whether an unproven handshake from addr may be queued now.
func (l *sourceLimiter) allow(addr netip.Addr, now time.Time) bool {
	return l.byIP.allow(addr, now, handshakeRate, handshakeBurst)
}

// allowProven reports whether a handshake whose mac2 proved it comes from
// ap, an address with agents live or last seen at its IP, may be queued
// now.
func (l *sourceLimiter) allowProven(ap netip.AddrPort, agents int, now time.Time) bool {
	if !l.byPort.allow(ap, now, provenRate, provenBurst) {
		return false
	}
	n := float64(agents)
	return l.provenByIP.allow(ap.Addr().Unmap(), now, provenIPRate+n*provenPerAgentRate, provenIPBurst+n*provenPerAgentBurst)
}

// sweep forgets sources whose bucket has refilled: they are idle.
func (l *sourceLimiter) sweep(now time.Time) {
	l.byIP.sweep(now, handshakeRate, handshakeBurst)
	l.byPort.sweep(now, provenRate, provenBurst)
	// At the base figures: an IP with agents may be forgotten before its
	// larger bucket is full, and start again full, which only errs
	// towards letting its agents in.
	l.provenByIP.sweep(now, provenIPRate, provenIPBurst)
}

// rateTable is a token bucket per source key, bounded to limiterMaxAddrs
// entries (beyond that, new sources share one bucket). The zero value is
// ready; mu guards every field.
type rateTable[K comparable] struct {
	mu      sync.Mutex
	buckets map[K]*bucket
	shared  bucket
}

// allow takes a token from k's bucket.
func (t *rateTable[K]) allow(k K, now time.Time, rate, burst float64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buckets == nil {
		t.buckets = map[K]*bucket{}
	}
	b := t.buckets[k]
	if b == nil {
		if len(t.buckets) >= limiterMaxAddrs {
			return t.shared.take(now, rate, burst)
		}
		b = &bucket{}
		t.buckets[k] = b
	}
	return b.take(now, rate, burst)
}

// sweep forgets keys whose bucket has refilled: they are idle.
func (t *rateTable[K]) sweep(now time.Time, rate, burst float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, b := range t.buckets {
		if now.Sub(b.last).Seconds()*rate+b.tokens >= burst {
			delete(t.buckets, k)
		}
	}
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
