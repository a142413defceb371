package lab

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestHeartbeatAutoInLab: behind a port-restricted NAT that forgets an
// idle UDP mapping after 10 s, the real agent with heartbeat auto
// measures the lifetime and tunes its heartbeat to it; then, idle for
// 80 s with requests from the internet at random moments, every request
// is answered, the link is never replaced, and the agent sends at most
// 1.5 times the minimum number of keepalives (one per 10 s). Finally the
// NAT forgets the mapping (conntrack -F) right after a heartbeat: the
// exposure answers again within one heartbeat interval plus 1 s. The
// 10-minute figures for 10, 30 and 120 s NATs are make lab-heartbeat's.
func TestHeartbeatAutoInLab(t *testing.T) {
	const natTimeout = 10 * time.Second
	const idle = 80 * time.Second
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted, Timeout: natTimeout}})
	tu := startTunnel(t, l, "a1", tunnelOpts{heartbeat: "auto"})
	ctx := testCtx(t)
	lifetime, hb, err := tu.WaitLifetime(ctx, "a1", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NAT timeout %v: measured lifetime %v, heartbeat %v", natTimeout, lifetime, hb)
	if lifetime < natTimeout*8/10 || lifetime > natTimeout {
		t.Fatalf("measured lifetime %v, want within 20 %% below %v", lifetime, natTimeout)
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	r, err := tu.Idle(ctx, "a1", idle, 4, rng)
	if err != nil {
		t.Fatal(err)
	}
	upH, upB := r.PerHour(r.Up)
	downH, downB := r.PerHour(r.Down)
	minimum := float64(idle) / float64(natTimeout)
	t.Logf("idle %v (%v between the 4 requests): %d keepalives (minimum %.0f, bound %.1f); at the NAT %d datagrams up, %d down: %.0f/h up (%.0f B/h), %.0f/h down (%.0f B/h)",
		idle, r.Quiet.Round(time.Second), r.Keepalives, minimum, 1.5*minimum, r.Up.Packets, r.Down.Packets, upH, upB, downH, downB)
	for _, f := range r.Failed {
		t.Errorf("request through the idle tunnel failed %s", f)
	}
	if r.Reconnect != "" {
		t.Errorf("the agent reconnected while idle: %s", r.Reconnect)
	}
	if float64(r.Keepalives) > 1.5*minimum {
		t.Errorf("%d keepalives in %v behind a %v NAT, want at most 1.5 x %.0f", r.Keepalives, idle, natTimeout, minimum)
	}
	if r.Keepalives < uint64(minimum)-1 {
		t.Errorf("%d keepalives in %v behind a %v NAT: fewer than one per timeout, yet reachable?", r.Keepalives, idle, natTimeout)
	}
	// A keepalive is two datagrams up (the Ping and KCP's ACK of the Pong).
	if maxUp := 2*1.5*r.Quiet.Seconds()/natTimeout.Seconds() + 2; float64(r.Up.Packets) > maxUp {
		t.Errorf("%d datagrams up at the NAT in %v of quiet, want at most %.0f", r.Up.Packets, r.Quiet, maxUp)
	}

	took, hb, err := tu.FlushRecovery(ctx, "a1", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mapping flushed right after a heartbeat: exposure answered again %v later (heartbeat %v)", took.Round(time.Millisecond), hb)
	if took > hb+time.Second {
		t.Fatalf("exposure back %v after the flush, want within the heartbeat %v + 1 s", took, hb)
	}
}
