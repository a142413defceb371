package agent

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestLivenessSkip: a beat is skipped only when the link sent traffic of
// its own since the last beat and the relay answered since then; the
// next beat then counts from that traffic.
func TestLivenessSkip(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const interval = 10 * time.Second
	for _, c := range []struct {
		name              string
		now               time.Duration // the timer fires (the beat was due at 9-10 s)
		recv, traffic     time.Duration // < 0: nothing since the first Ping
		want              verdict
		nextAfter, before time.Duration // for idle: the next beat's window
	}{
		{"traffic and an answer skip", 10 * time.Second, 6 * time.Second, 5 * time.Second, idle, 14 * time.Second, 15 * time.Second},
		{"keepalive only pings", 10 * time.Second, -1, -1, sendPing, 0, 0},
		{"traffic without an answer pings", 10 * time.Second, -1, 5 * time.Second, sendPing, 0, 0},                // a dead relay and KCP retransmitting
		{"an answer without traffic pings", 10 * time.Second, 6 * time.Second, -1, sendPing, 0, 0},                // the relay talks, the NAT forgets
		{"traffic too long ago pings", 11 * time.Second, 6 * time.Second, 500 * time.Millisecond, sendPing, 0, 0}, // a late timer
	} {
		t.Run(c.name, func(t *testing.T) {
			l := liveness{interval: interval}
			if v, _ := l.step(t0, time.Time{}, time.Time{}, 0); v != sendPing {
				t.Fatalf("first step: got %v, want sendPing", v)
			}
			recv, traffic := at(10*time.Millisecond), time.Time{} // the first Ping was answered
			if c.recv >= 0 {
				recv = at(c.recv)
			}
			if c.traffic >= 0 {
				traffic = at(c.traffic)
			}
			v, wait := l.step(at(c.now), recv, traffic, 0)
			if v != c.want {
				t.Fatalf("got %v, want %v", v, c.want)
			}
			if v == idle {
				if next := c.now + wait; next < c.nextAfter || next > c.before {
					t.Fatalf("next beat at %v, want within [%v, %v]", next, c.nextAfter, c.before)
				}
				if l.skipped != 1 {
					t.Fatalf("skipped %d beats, want 1", l.skipped)
				}
			}
		})
	}
}

// TestLivenessSkipKeepsMappingFresh drives the heartbeat with its own
// waits through an hour of random traffic (bursts and long pauses, each
// answered by the relay 20 ms later) and checks what the NAT sees: the
// agent never leaves its mapping without a datagram for longer than the
// interval, and it pings only when traffic did not already refresh it
// (a busy stretch costs no Pings, an idle one one per interval at most).
func TestLivenessSkipKeepsMappingFresh(t *testing.T) {
	const interval = 8 * time.Second
	const answer = 20 * time.Millisecond
	t0 := time.Unix(1000, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	// traffic: busy stretches with a datagram every 0-3 s, then pauses of
	// up to 40 s.
	var traffic []time.Time
	for at := t0.Add(time.Second); at.Before(t0.Add(time.Hour)); {
		busy := time.Duration(rng.Int64N(int64(2 * time.Minute)))
		for end := at.Add(busy); at.Before(end); at = at.Add(time.Duration(rng.Int64N(int64(3 * time.Second)))) {
			traffic = append(traffic, at)
		}
		at = at.Add(time.Duration(rng.Int64N(int64(40 * time.Second))))
	}
	end := traffic[len(traffic)-1].Add(time.Minute)

	l := liveness{interval: interval}
	var pings []time.Time
	var lastRecv, lastTraffic time.Time
	next := 0 // index of the next traffic datagram
	now := t0
	for now.Before(end) {
		// Everything up to now happened: traffic and the relay's answers
		// to it and to the Pings (all answered).
		for next < len(traffic) && !traffic[next].After(now) {
			lastTraffic = traffic[next]
			if r := traffic[next].Add(answer); !r.After(now) {
				lastRecv = r
			}
			next++
		}
		if n := len(pings); n > 0 && !pings[n-1].Add(answer).After(now) && pings[n-1].Add(answer).After(lastRecv) {
			lastRecv = pings[n-1].Add(answer)
		}
		v, wait := l.step(now, lastRecv, lastTraffic, 0)
		switch v {
		case dead:
			t.Fatalf("dead at %v with every request answered", now.Sub(t0))
		case sendPing:
			pings = append(pings, now)
			if !l.probing.IsZero() {
				t.Fatalf("probing at %v with every request answered", now.Sub(t0))
			}
		}
		// The timer fires after wait, or the answer (20 ms) is seen first.
		now = now.Add(max(min(wait, answer), time.Millisecond))
		if wait > answer {
			now = now.Add(wait - answer)
		}
	}

	sends := slices.Concat(traffic, pings)
	slices.SortFunc(sends, func(a, b time.Time) int { return a.Compare(b) })
	var longest time.Duration
	for i := 1; i < len(sends); i++ {
		longest = max(longest, sends[i].Sub(sends[i-1]))
	}
	// An idle interval needs one Ping per interval at least; the agent
	// pinged only for the quiet stretches.
	var quiet time.Duration
	for i := 1; i < len(traffic); i++ {
		if g := traffic[i].Sub(traffic[i-1]); g > interval*9/10 {
			quiet += g
		}
	}
	maxPings := 1 + int(quiet/(interval*9/10)) + len(traffic)/1000
	t.Logf("%d traffic datagrams, %d Pings, %d beats skipped, longest gap %v (interval %v), quiet time %v",
		len(traffic), len(pings), l.skipped, longest, interval, quiet.Round(time.Second))
	if longest > interval {
		t.Fatalf("the mapping went %v without a datagram, over the %v interval", longest, interval)
	}
	if len(pings) > maxPings {
		t.Fatalf("%d Pings, want at most %d (one per quiet interval)", len(pings), maxPings)
	}
	if l.skipped == 0 {
		t.Fatal("no beat was skipped despite traffic")
	}
}
