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
// nowhere). The agent gets the network-changed signal the router's procd
// trigger sends (SIGUSR1) and pings its relay at once. Over UDP the relay
// follows it to the new address (the link, and the connections it carries,
// are kept) and the NAT is measured again there; without the signal the
// agent notices only through its heartbeats. Behind a gateway that blocks
// UDP the TCP fallback's connection died with the address: the ping fails
// (or goes unanswered) and the agent re-dials at once. The agent's heartbeat is 20 s, as
// when tuned to a long mapping lifetime (the default cap is 5 min).
func TestWANRenumber(t *testing.T) {
	t.Run("udp", func(t *testing.T) {
		l := up(t, map[string]Site{"a": {Behaviour: PortRestricted}})
		tu := startTunnel(t, l, "a1", tunnelOpts{heartbeat: "20s"})
		renumber(t, l, l.PublicIP("a"), "203.0.113.105")
		tu.agent.Signal(syscall.SIGUSR1) // what /etc/init.d/pinhole netchange sends
		with, ok := reachable(l, tu, 10*time.Second)
		if !ok {
			t.Fatalf("with the signal: exposure not back within 10 s")
		}
		// the relay's view of the agent, and the NAT measured again there
		deadline := time.Now().Add(5 * time.Second)
		for {
			st := tu.status(t)
			pub, _ := st["public_addr"].(string)
			nat, _ := st["nat"].(map[string]any)
			natPub, _ := nat["public_address"].(string)
			if strings.HasPrefix(pub, "203.0.113.105:") && strings.HasPrefix(natPub, "203.0.113.105:") {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("5 s after the renumber: public address %q, NAT measured at %q; want 203.0.113.105:* for both", pub, natPub)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := strings.Count(tu.agent.Output(), "connected to relay"); n != 1 {
			t.Errorf("the agent connected %d times; the link should have been kept", n)
		}

		renumber(t, l, "203.0.113.105", "203.0.113.106")
		without, ok := reachable(l, tu, 90*time.Second)
		t.Logf("udp: gateway public address changed: exposure answers again %v after it with the network-changed signal (link kept), %v without (heartbeat 20 s)",
			with.Round(time.Millisecond), without.Round(time.Millisecond))
		if with > time.Second {
			t.Errorf("with the signal the exposure came back after %v, want within 1 s", with)
		}
		if !ok {
			t.Errorf("without the signal the exposure did not come back within 90 s")
		}
	})
	t.Run("tcp-fallback", func(t *testing.T) {
		l := up(t, map[string]Site{"a": {Behaviour: UDPBlocked}})
		tu := startTunnel(t, l, "a1", tunnelOpts{heartbeat: "20s"})
		renumber(t, l, l.PublicIP("a"), "203.0.113.105")
		tu.agent.Signal(syscall.SIGUSR1)
		with, ok := reachable(l, tu, 10*time.Second)
		t.Logf("tcp fallback: gateway public address changed: exposure answers again %v after it with the network-changed signal (re-dialed)", with.Round(time.Millisecond))
		// The dial tries udp first for udp_wait (3 s), then tcp.
		if !ok || with > 4500*time.Millisecond {
			t.Errorf("with the signal the exposure came back after %v (ok %v), want within 4.5 s (the ping fails, udp_wait 3 s, tcp)", with, ok)
		}
		if n := strings.Count(tu.agent.Output(), "connected to relay"); n != 2 {
			t.Errorf("the agent connected %d times, want 2 (re-dialed once)", n)
		}
	})
}

// reachable polls the exposure from the internet client with short checks:
// a check sent into a dead link must not hold the measurement for its full
// timeout.
func reachable(l *Lab, tu *tunnel, limit time.Duration) (time.Duration, bool) {
	tcp, _ := tu.Exposure(tu.host)
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

func renumber(t *testing.T, l *Lab, from, to string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.RenumberWAN(ctx, "a", from, to); err != nil {
		t.Fatal(err)
	}
}
