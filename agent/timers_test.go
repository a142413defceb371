package agent

import (
	"testing"
	"time"
)

// TestLiveness drives the heartbeat state machine with made-up times: a
// ping per interval while answers arrive, fast probes after a missed
// answer, dead after fastProbeWindow of silence, whatever the interval.
func TestLiveness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type step struct {
		now, lastRecv time.Duration // since t0; lastRecv < 0: nothing received
		want          verdict
	}
	cases := []struct {
		name     string
		interval time.Duration
		steps    []step
	}{
		{"answered pings stay quiet", 120 * time.Second, []step{
			{0, -1, sendPing},
			{time.Second, 50 * time.Millisecond, idle}, // answered: wait for the next interval
			{90 * time.Second, 50 * time.Millisecond, idle},
		}},
		{"missed answer probes then dies", 120 * time.Second, []step{
			{0, -1, sendPing},
			{time.Second, -1, sendPing},     // no answer within 1 s: fast probe
			{2 * time.Second, -1, sendPing}, // still probing
			{5 * time.Second, -1, sendPing},
			{6 * time.Second, -1, dead}, // 5 s of probes, nothing back
		}},
		{"late answer recovers", 15 * time.Second, []step{
			{0, -1, sendPing},
			{time.Second, -1, sendPing},
			{2 * time.Second, 1500 * time.Millisecond, idle}, // an answer ends the probes
			{5 * time.Second, 1500 * time.Millisecond, idle}, // and no extra pings follow
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := liveness{interval: c.interval}
			for i, s := range c.steps {
				last := time.Time{}
				if s.lastRecv >= 0 {
					last = at(s.lastRecv)
				}
				if got, _ := l.step(at(s.now), last, time.Time{}, 10*time.Millisecond); got != s.want {
					t.Fatalf("step %d at %v: got %v, want %v", i, s.now, got, s.want)
				}
			}
		})
	}
}

// TestLivenessRequest: a Register sent between heartbeats that gets no
// answer starts the probes at once, not at the next heartbeat.
func TestLivenessRequest(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := liveness{interval: time.Minute}
	l.step(t0, time.Time{}, time.Time{}, 0)
	l.step(t0.Add(time.Second), t0.Add(10*time.Millisecond), time.Time{}, 0) // the first ping was answered
	l.sent(t0.Add(10 * time.Second))
	if v, wait := l.step(t0.Add(10*time.Second), t0.Add(10*time.Millisecond), time.Time{}, 0); v != idle || wait != minAnswerWait {
		t.Fatalf("right after the request: got %v in %v, want idle for %v", v, wait, minAnswerWait)
	}
	if v, _ := l.step(t0.Add(11*time.Second), t0.Add(10*time.Millisecond), time.Time{}, 0); v != sendPing {
		t.Fatalf("request unanswered: got %v, want a fast probe", v)
	}
	if v, _ := l.step(t0.Add(16*time.Second), t0.Add(10*time.Millisecond), time.Time{}, 0); v != dead {
		t.Fatalf("5 s of probes unanswered: got %v, want dead", v)
	}
}

// TestBackoff pins the reconnect schedule.
func TestBackoff(t *testing.T) {
	t0 := time.Unix(1000, 0)
	within := func(t *testing.T, got, want time.Duration) {
		t.Helper()
		if got < time.Duration(float64(want)*(1-jitterFraction)) || got > time.Duration(float64(want)*(1+jitterFraction)) {
			t.Fatalf("got %v, want %v ±20%%", got, want)
		}
	}
	t.Run("never connected doubles", func(t *testing.T) {
		var b backoff
		for _, want := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
			within(t, b.next(t0, 30*time.Second), want*time.Second)
		}
	})
	t.Run("lost link retries at once, then stays short", func(t *testing.T) {
		var b backoff
		b.linkLost(t0, time.Minute)
		if got := b.next(t0, 30*time.Second); got >= immediateSpread {
			t.Fatalf("first retry in %v, want under %v", got, immediateSpread)
		}
		within(t, b.next(t0.Add(5*time.Second), 30*time.Second), time.Second)
		within(t, b.next(t0.Add(20*time.Second), 30*time.Second), 2*time.Second)
		within(t, b.next(t0.Add(31*time.Second), 30*time.Second), 4*time.Second)
		within(t, b.next(t0.Add(40*time.Second), 30*time.Second), 8*time.Second)
	})
	t.Run("a link that died at once keeps the schedule", func(t *testing.T) {
		var b backoff
		b.linkLost(t0, time.Minute)
		b.next(t0, 30*time.Second)
		b.linkLost(t0.Add(20*time.Second), 100*time.Millisecond)
		within(t, b.next(t0.Add(20*time.Second), 30*time.Second), 2*time.Second)
	})
	t.Run("duplicate key holds off", func(t *testing.T) {
		var b backoff
		b.linkLost(t0, time.Minute)
		b.holdOff(30 * time.Second)
		within(t, b.next(t0, 30*time.Second), 30*time.Second)
	})
}

// TestHeartbeatFor: a fixed heartbeat is kept; auto starts at the default
// and follows 0.8 × the measured lifetime within min and max.
func TestHeartbeatFor(t *testing.T) {
	for _, c := range []struct {
		name     string
		cfg      Config
		lifetime time.Duration
		want     time.Duration
	}{
		{"fixed", Config{Heartbeat: 40 * time.Second}, 30 * time.Second, 40 * time.Second},
		{"auto-unmeasured", Config{}, 0, 15 * time.Second},
		{"auto-10s-nat", Config{}, 9375 * time.Millisecond, 7500 * time.Millisecond},
		{"auto-30s-nat", Config{}, 30 * time.Second, 24 * time.Second},
		{"auto-linux-stream", Config{}, 180 * time.Second, 144 * time.Second},
		{"auto-capped", Config{}, 10 * time.Minute, 5 * time.Minute},
		{"auto-min", Config{}, 5 * time.Second, 5 * time.Second},
		{"auto-short", Config{}, shortLifetime, 5 * time.Second},
		{"auto-own-bounds", Config{HeartbeatMin: time.Second, HeartbeatMax: time.Minute}, 4 * time.Second, 3200 * time.Millisecond},
		{"auto-min-above-default", Config{HeartbeatMin: 20 * time.Second}, 0, 20 * time.Second},
	} {
		if got := c.cfg.heartbeatFor(c.lifetime); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLivenessRetune: a shorter interval applies at once, a longer one
// from the next Ping on.
func TestLivenessRetune(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := liveness{interval: 15 * time.Second}
	l.step(t0, t0, time.Time{}, 0) // first ping
	l.step(t0.Add(10*time.Millisecond), t0.Add(10*time.Millisecond), time.Time{}, 0)
	before := l.nextPing
	l.retune(t0.Add(time.Second), 2*time.Second)
	if got := l.nextPing.Sub(t0); got > time.Second+2400*time.Millisecond || !l.nextPing.Before(before) {
		t.Fatalf("next ping %v after start, want within 1 s + 2 s ±20 %%", got)
	}
	l.retune(t0.Add(time.Second), time.Minute)
	if got := l.nextPing.Sub(t0); got > time.Second+2400*time.Millisecond {
		t.Fatalf("a longer interval moved the next ping to %v", got)
	}
}

// TestLivenessDiscountsStall: a wake-up late by a stall of the agent's own
// process moves the probe window on by the stall, so the relay gets its
// full 5 s of the agent's running time to answer; a wake-up late by
// timer jitter alone does not.
func TestLivenessDiscountsStall(t *testing.T) {
	t0 := time.Unix(1000, 0)
	answered := t0.Add(10 * time.Millisecond)
	probing := func() *liveness {
		l := &liveness{interval: time.Minute}
		l.step(t0, time.Time{}, time.Time{}, 0)
		l.step(t0.Add(time.Second), answered, time.Time{}, 0)
		l.sent(t0.Add(10 * time.Second))
		if v, _ := l.step(t0.Add(11*time.Second), answered, time.Time{}, 0); v != sendPing {
			t.Fatalf("request unanswered: got %v, want a fast probe", v)
		}
		return l
	}
	l := probing()
	l.stalled(4 * time.Second) // the 1 s probe timer fired 4 s late
	if v, _ := l.step(t0.Add(16*time.Second), answered, time.Time{}, 0); v != sendPing {
		t.Fatalf("after a 4 s stall: got %v, want another probe (the stall is not the relay's silence)", v)
	}
	if v, _ := l.step(t0.Add(20*time.Second), answered, time.Time{}, 0); v != dead {
		t.Fatalf("5 s of the agent's own time unanswered: got %v, want dead", v)
	}
	l = probing()
	l.stalled(100 * time.Millisecond) // jitter
	if v, _ := l.step(t0.Add(16*time.Second), answered, time.Time{}, 0); v != dead {
		t.Fatalf("after 100 ms of jitter: got %v, want dead at the usual time", v)
	}
}
