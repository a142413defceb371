package netcheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pinhole/pinhole/protocol/stun"
)

// Mapping lifetime (RFC 4787 REQ-5: at least 2 minutes, 5 by default;
// routers in the field often keep an idle UDP mapping 30 s). Each probe
// opens a fresh socket, so nothing else refreshes its mapping (the
// tunnel's heartbeats go out of another), and asks the relay, with
// PINHOLE-DELAY, for an answer T later. The answer passes the NAT only if
// the mapping lived T (inbound packets do not refresh it before they
// arrive, whatever REQ-6 the NAT follows). Probes for several T run at
// once; later rounds bisect between the longest T answered and the
// shortest T not answered.
//
// Before the delayed request a probe exchanges one plain Binding and
// waits Warmup: Linux conntrack (OpenWrt) keeps a UDP flow that saw
// one packet each way 30 s, but one that still carries traffic 2 s after
// its first packet 120-180 s (nf_conntrack_udp_timeout_stream), the
// state the tunnel's socket is in. Without it the probe would measure
// an unreplied flow's timeout, not the tunnel's.

// LifetimeSchedule is how a measurement probes. The zero value is the
// real schedule (DefaultLifetimeSchedule); tests scale it down.
type LifetimeSchedule struct {
	// First are the delays probed at once in the first round.
	First []time.Duration
	// Max caps the result: a mapping that outlives it is reported as Max.
	Max time.Duration
	// Step is the precision bisection stops at: when the gap between
	// alive and dead is at most max(Step, Precision × alive).
	Step      time.Duration
	Precision float64
	// PerRound is how many delays each bisection round probes at once,
	// Rounds how many rounds at most: together with First they bound the
	// sockets used.
	PerRound, Rounds int
	// Margin is how long after T an answer may still arrive (a round trip
	// and the relay's timer): a probe is dead after T + Margin.
	Margin time.Duration
	// Warmup is the time between the plain exchange and the delayed
	// request (see above).
	Warmup time.Duration
}

// Shortest is the shortest delay of the first round (of the default
// schedule for the zero value).
func (s LifetimeSchedule) Shortest() time.Duration {
	if len(s.First) == 0 {
		s = DefaultLifetimeSchedule
	}
	return slices.Min(s.First)
}

// DefaultLifetimeSchedule: 30 s is the common home-router timeout, 120 s
// and 180 s Linux's for a flow in both directions, 300 s REQ-5's default.
// Bisection to 10 % or 1 s (a 10 s NAT is measured as 9.75 s, which
// heartbeat auto can outrun at 0.8 of it); at most 5 + 3×3 = 14 sockets, and a round
// lasts until its first dead probe (longer ones stop then), so a 30 s NAT
// is measured in about 1.5 minutes and the worst case is about 10.
var DefaultLifetimeSchedule = LifetimeSchedule{
	First:     []time.Duration{15 * time.Second, 30 * time.Second, 60 * time.Second, 120 * time.Second, 300 * time.Second},
	Max:       10 * time.Minute,
	Step:      time.Second,
	Precision: 0.1,
	PerRound:  3,
	Rounds:    3,
	Margin:    3 * time.Second,
	Warmup:    3 * time.Second,
}

// ErrNoDelay reports a relay that answered a delayed request at once: it
// does not know PINHOLE-DELAY (an older relay or another STUN server).
var ErrNoDelay = errors.New("the relay does not support delayed STUN answers")

// ErrShortLifetime: even the shortest delay probed went unanswered.
var ErrShortLifetime = errors.New("mapping expired before the shortest probe")

// errStop ends bisection early with the result so far.
var errStop = errors.New("stop")

// probeResult is what one delay probe found.
type probeResult int

const (
	probeUnknown probeResult = iota // the probe could not tell (no socket, no warm-up answer, refused)
	probeAlive
	probeDead
	probeNoDelay
)

// Lifetime measures how long an idle mapping lives: the longest delay
// answered, a lower bound within the schedule's precision, capped at
// s.Max. It returns ErrShortLifetime (and 0) when even the shortest was
// not answered, ErrNoDelay when the relay cannot delay answers.
func (c *Checker) Lifetime(ctx context.Context, s LifetimeSchedule) (time.Duration, error) {
	if len(s.First) == 0 {
		s = DefaultLifetimeSchedule
	}
	var alive, dead time.Duration // longest alive, shortest dead above it (0: none)
	first := true
	round := func(ts []time.Duration) error {
		res := c.probeAll(ctx, ts, s)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		known := false
		for i, t := range ts {
			switch res[i] {
			case probeNoDelay:
				return ErrNoDelay
			case probeAlive:
				alive, known = max(alive, t), true
			case probeDead:
				known = true
			}
		}
		if !known {
			if !first {
				return errStop // a bisection round told nothing: keep what is known
			}
			return fmt.Errorf("relay %s: no lifetime probe got an answer", c.cfg.Relay)
		}
		// The shortest dead above the longest alive: a probe lost on the
		// way cannot make the bound longer than what was answered.
		dead = 0
		for i, t := range ts {
			if res[i] == probeDead && t > alive && (dead == 0 || t < dead) {
				dead = t
			}
		}
		return nil
	}
	if err := round(s.First); err != nil {
		return 0, err
	}
	first = false
	for r := 0; r < s.Rounds && dead > 0 && dead-alive > max(s.Step, time.Duration(s.Precision*float64(alive))); r++ {
		lo, hi := alive, dead
		if lo == 0 {
			lo = min(s.Step, hi/2) // nothing answered yet: search below the shortest
		}
		var ts []time.Duration
		for i := 1; i <= s.PerRound; i++ {
			ts = append(ts, lo+(hi-lo)*time.Duration(i)/time.Duration(s.PerRound+1))
		}
		if alive == 0 {
			ts = append(ts, lo)
		}
		prevDead := dead
		if err := round(ts); err == errStop {
			break
		} else if err != nil {
			return 0, err
		}
		if dead == 0 {
			dead = prevDead // nothing new died: the old bound stands
		}
	}
	if alive == 0 {
		return 0, ErrShortLifetime
	}
	return min(alive, s.Max), nil
}

// probeAll runs one probe per delay in parallel and waits for all. A
// dead probe stops the longer ones: their mappings expire too (a mapping
// only ages), so waiting out a 300 s probe behind a 30 s NAT would be
// minutes for nothing. Stopped probes are unknown.
func (c *Checker) probeAll(ctx context.Context, ts []time.Duration, s LifetimeSchedule) []probeResult {
	res := make([]probeResult, len(ts))
	cancels := make([]context.CancelFunc, len(ts))
	type done struct {
		i int
		r probeResult
	}
	out := make(chan done, len(ts))
	for i, t := range ts {
		pctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		go func() { out <- done{i, c.probeDelay(pctx, t, s)} }()
	}
	for range ts {
		d := <-out
		res[d.i] = d.r
		cancels[d.i]()
		if d.r == probeDead {
			for j, t := range ts {
				if t > ts[d.i] {
					cancels[j]()
				}
			}
		}
	}
	return res
}

// probeDelay asks for an answer t after the request, on a fresh socket.
func (c *Checker) probeDelay(ctx context.Context, t time.Duration, s LifetimeSchedule) probeResult {
	p, err := c.openProbe()
	if err != nil {
		return probeUnknown
	}
	defer p.close()
	send := p.send(c.cfg.Relay)
	tx := stun.NewTxID()
	if _, ok := c.transact(ctx, send, c.cfg.Relay, tx, stun.BindingRequest(tx, 0), answerWait); !ok {
		return probeUnknown // this socket does not reach the relay at all
	}
	if s.Warmup > 0 {
		w := time.NewTimer(s.Warmup)
		defer w.Stop()
		select {
		case <-ctx.Done():
			return probeUnknown
		case <-w.C:
		}
	}
	tx = stun.NewTxID()
	m := stun.Message{Type: stun.TypeBindingRequest, TxID: tx, Fingerprint: true}
	m.AddDelay(t)
	req := stun.Append(nil, m)
	ch, done := c.expect(tx)
	defer done()
	// Sent once: a retransmission would refresh the mapping mid-way. A
	// request lost on the way makes the probe look dead, which errs on
	// the short side (a shorter heartbeat), never the long one.
	start := time.Now()
	if send(req) != nil {
		return probeUnknown
	}
	deadline := time.NewTimer(t + s.Margin)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return probeUnknown
		case <-deadline.C:
			return probeDead
		case a := <-ch:
			if a.from != c.cfg.Relay {
				continue
			}
			if a.msg.Type != stun.TypeBindingSuccess {
				return probeUnknown // refused (too many waiting, out of range)
			}
			// An answer well before t: the server ignored the delay.
			if time.Since(start) < t*9/10 {
				return probeNoDelay
			}
			return probeAlive
		}
	}
}
