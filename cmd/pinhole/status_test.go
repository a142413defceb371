package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/admin"
	"github.com/pinhole/pinhole/relay"
)

// serveStatus runs an admin endpoint answering with doc until the test ends.
func serveStatus(t *testing.T, doc any) string {
	ln, err := admin.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go admin.Serve(ctx, ln, func() any { return doc })
	return ln.Addr().String()
}

func TestStatusOutput(t *testing.T) {
	since := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	agentAddr := serveStatus(t, agent.Status{Role: "agent", Name: "home-router", Connected: true, Relay: "vps.example:7700",
		Transport: "udp", RelayAddr: "203.0.113.7:7700", Observed: "198.51.100.20:41234", Since: &since, RTTMillis: 23.4,
		Local: "0.0.0.0:41234", Exposures: []agent.ExposureReport{{Name: "web", Status: "ok"}, {Name: "ssh", Status: "not allowed", Detail: "tcp port 2222 is not in this agent's allow_ports"}},
		Counters: map[string]uint64{"streams": 3}})
	code, out, errOut := run(t, "", "status", "--admin", agentAddr)
	if code != 0 {
		t.Fatalf("status: exit %d, %s", code, errOut)
	}
	for _, want := range []string{"agent home-router", "vps.example:7700 via udp (203.0.113.7:7700), rtt 23.4 ms",
		"public addr 198.51.100.20:41234", "exposure    web              ok",
		"ssh              not allowed tcp port 2222 is not in this agent's allow_ports", "streams=3"} {
		if !strings.Contains(out, want) {
			t.Errorf("agent status output lacks %q:\n%s", want, out)
		}
	}

	relayAddr := serveStatus(t, relay.Status{Role: "relay", Addr: "0.0.0.0:7700", Agents: []relay.AgentStatus{{Name: "home-router",
		Transport: "tcp", Addr: "198.51.100.20:5000", Since: since, Streams: 2,
		Exposures: []relay.ExposureStatus{{Name: "web", Proto: "tcp", Port: 8080}}}}, Counter: map[string]uint64{"handshakes": 1}})
	code, out, _ = run(t, "", "status", "--admin", relayAddr)
	if code != 0 || !strings.Contains(out, "1 agents connected") || !strings.Contains(out, "exposure web              8080/tcp") {
		t.Errorf("relay status: exit %d, output:\n%s", code, out)
	}

	code, out, _ = run(t, "", "status", "--admin", agentAddr, "--json")
	if code != 0 || !strings.Contains(out, `"public_addr": "198.51.100.20:41234"`) {
		t.Errorf("status --json: exit %d, output:\n%s", code, out)
	}
	if code, _, errOut := run(t, "", "status", "--admin", "127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "is pinhole running") {
		t.Errorf("status against nothing: exit %d, %q", code, errOut)
	}
}
