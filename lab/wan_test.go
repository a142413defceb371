package lab

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWANRenumber: the ISP gives the site's gateway a new public address
// (the old mappings are gone; the relay's replies to the old address go
// nowhere). With the network-changed signal the router's procd trigger
// sends (SIGUSR1), the exposure answers again within 2 s; without it the
// agent notices only through its heartbeats. The agent's heartbeat is
// 20 s, as when tuned to a long mapping lifetime (the default cap is 5 min).
func TestWANRenumber(t *testing.T) {
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted}})
	tu := startTunnel(t, l, "a1", tunnelOpts{heartbeat: "20s"})
	tcp, _ := tu.Exposure(tu.host)
	// reachable polls with short checks: a check sent into a dead link
	// must not hold the measurement for its full timeout.
	reachable := func(limit time.Duration) (time.Duration, bool) {
		start := time.Now()
		for time.Since(start) < limit {
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			out, err := l.Run(ctx, "client", bins.probe, "tcp-check", tcp, "1024")
			cancel()
			if err == nil && strings.Contains(out, `"intact":true`) {
				return time.Since(start), true
			}
			time.Sleep(50 * time.Millisecond)
		}
		return limit, false
	}
	renumber := func(from, to string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.RenumberWAN(ctx, "a", from, to); err != nil {
			t.Fatal(err)
		}
	}

	renumber(l.PublicIP("a"), "203.0.113.105")
	tu.agent.Signal(syscall.SIGUSR1) // what /etc/init.d/pinhole netchange sends
	with, ok := reachable(10 * time.Second)
	if !ok {
		t.Fatalf("with the signal: exposure not back within 10 s")
	}
	if st := tu.status(t); st["public_addr"] == nil || !strings.Contains(st["public_addr"].(string), "203.0.113.105:") {
		t.Errorf("public address after the renumber: %v, want 203.0.113.105:*", st["public_addr"])
	}
	time.Sleep(2 * time.Second) // let the re-dialed link settle (NAT re-check)

	renumber("203.0.113.105", "203.0.113.106")
	without, ok := reachable(90 * time.Second)
	t.Logf("gateway public address changed: exposure answers again %v after it with the network-changed signal, %v without (heartbeat 20 s)",
		with.Round(time.Millisecond), without.Round(time.Millisecond))
	if with > 2*time.Second {
		t.Errorf("with the signal the exposure came back after %v, want within 2 s", with)
	}
	if !ok {
		t.Errorf("without the signal the exposure did not come back within 90 s")
	}
}
