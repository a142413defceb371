package relay

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/protocol/stun"
)

// Delayed STUN answers (PINHOLE-DELAY, protocol/stun AttrPinholeDelay): an
// agent measures its NAT's mapping lifetime (RFC 4787 REQ-5) by asking,
// from a fresh socket, for an answer T later; the answer gets through only
// if the mapping lived T. The relay keeps the answer, already built and no
// larger than an immediate one, on a timer and sends it from the socket
// the request came to, to the request's source only, so a delayed answer
// reflects nothing an immediate one would not. Waiting answers are
// bounded per source IP and in total; beyond that a request is refused
// at once with 508 (so the agent does not mistake a refusal for an
// expired mapping) and counted.
const (
	// minDelay and maxDelay bound what a client may ask. Below 100 ms a
	// delay tells nothing a round trip does not (tests scale the schedule
	// down to a few hundred milliseconds); above 10 minutes the agent's
	// heartbeat maximum (5 min) applies anyway.
	minDelay = 100 * time.Millisecond
	maxDelay = 10 * time.Minute
	// maxDelayedPerIP: one lifetime measurement has at most 6 probes
	// waiting at once; a few agents behind one carrier-grade NAT fit.
	maxDelayedPerIP = 16
	// maxDelayed bounds the relay's memory for waiting answers (each a
	// timer and a buffer of at most 100 bytes: under 1 MiB in all).
	maxDelayed = 4096
)

// delayer holds the waiting answers. mu guards perIP, timers and stopped;
// a timer's function runs at most once and removes itself.
type delayer struct {
	mu      sync.Mutex
	perIP   map[netip.Addr]int
	timers  map[*time.Timer]struct{}
	stopped bool
	sending sync.WaitGroup // timer functions past the stopped check

	accepted, refused atomic.Uint64
}

// schedule sends b to to after d with send; it reports false (and keeps
// nothing) when the bounds are reached or the relay stopped.
func (d *delayer) schedule(delay time.Duration, b []byte, to netip.AddrPort, send func([]byte, netip.AddrPort)) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || d.perIP[to.Addr()] >= maxDelayedPerIP || len(d.timers) >= maxDelayed {
		d.refused.Add(1)
		return false
	}
	if d.perIP == nil {
		d.perIP, d.timers = map[netip.Addr]int{}, map[*time.Timer]struct{}{}
	}
	d.perIP[to.Addr()]++
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		d.mu.Lock()
		if d.stopped {
			d.mu.Unlock()
			return
		}
		d.releaseLocked(t, to.Addr())
		d.sending.Add(1)
		d.mu.Unlock()
		defer d.sending.Done()
		send(b, to)
	})
	d.timers[t] = struct{}{}
	d.accepted.Add(1)
	return true
}

func (d *delayer) releaseLocked(t *time.Timer, ip netip.Addr) {
	delete(d.timers, t)
	if d.perIP[ip]--; d.perIP[ip] <= 0 {
		delete(d.perIP, ip)
	}
}

// stop drops every waiting answer and returns once no timer function is
// sending: the sockets may close after it.
func (d *delayer) stop() {
	d.mu.Lock()
	d.stopped = true
	for t := range d.timers {
		t.Stop()
	}
	d.timers, d.perIP = nil, nil
	d.mu.Unlock()
	d.sending.Wait()
}

// waiting reports how many answers wait (for tests).
func (d *delayer) waiting() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.timers)
}

// delayOf returns the delay a request asks for: 0 without PINHOLE-DELAY,
// ok false when it is malformed or out of bounds (answered 400).
func delayOf(m stun.Message) (time.Duration, bool) {
	d, err := m.Delay()
	switch {
	case errors.Is(err, stun.ErrNoAttr):
		return 0, true
	case err != nil:
		return 0, false
	}
	return d, d >= minDelay && d <= maxDelay
}
