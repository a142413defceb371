package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/admin"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/relay"
)

// serveStatus runs an admin endpoint answering with doc until the test ends.
func serveStatus(t *testing.T, doc admin.Document) string {
	ln, err := admin.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go admin.Serve(ctx, ln, func() admin.Document { return doc })
	return ln.Addr().String()
}

func TestStatusOutput(t *testing.T) {
	since := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	agentAddr := serveStatus(t, agent.Status{Role: "agent", Name: "home-router", Connected: true, Relay: "vps.example:7700",
		Transport: "udp", RelayAddr: "203.0.113.7:7700", Observed: "198.51.100.20:41234", Since: &since, RTTMillis: 23.4,
		Local: "0.0.0.0:41234", Exposures: []agent.ExposureReport{{Name: "web", Status: "ok"}, {Name: "ssh", Status: "not allowed", Detail: "tcp port 2222 is not in this agent's allow_ports"}},
		Counters: map[string]uint64{"streams": 3}, Process: admin.Process{Goroutines: 17, OpenFDs: 9, HeapInuse: 3 << 20, RSS: 12 << 20}})
	code, out, errOut := run(t, "", "status", "--admin", agentAddr)
	if code != 0 {
		t.Fatalf("status: exit %d, %s", code, errOut)
	}
	for _, want := range []string{"agent home-router", "vps.example:7700 via udp (203.0.113.7:7700), rtt 23.4 ms",
		"public addr 198.51.100.20:41234", "exposure    web              ok",
		"ssh              not allowed tcp port 2222 is not in this agent's allow_ports", "streams=3",
		"process     17 goroutines, 9 open fds, heap 3.0 MiB, rss 12.0 MiB"} {
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
	if code != 0 || !strings.Contains(out, `"public_addr": "198.51.100.20:41234"`) || !strings.Contains(out, `"open_fds": 9`) {
		t.Errorf("status --json: exit %d, output:\n%s", code, out)
	}
	if code, _, errOut := run(t, "", "status", "--admin", "127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "is pinhole running") {
		t.Errorf("status against nothing: exit %d, %q", code, errOut)
	}
}

// TestStatusProcess asks the status endpoints of a real in-process relay
// and agent: both carry the process object with plausible numbers, and
// the relay has the UDP flow counters.
func TestStatusProcess(t *testing.T) {
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	rcfg.Admin = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey)
	acfg.Admin = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	testenv.Allow(rcfg, acfg)
	r, _, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a, _, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "agent connected", func() bool { return a.Status().Connected })
	for role, addr := range map[string]string{"relay": rcfg.Admin, "agent": acfg.Admin} {
		code, out, errOut := run(t, "", "status", "--admin", addr, "--json")
		if code != 0 {
			t.Fatalf("%s status: exit %d, %s", role, code, errOut)
		}
		var doc struct {
			Process  map[string]float64 `json:"process"`
			Counters map[string]uint64  `json:"counters"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%s status --json: %v\n%s", role, err, out)
		}
		p := doc.Process
		if p["goroutines"] < 2 || p["open_fds"] < 3 || p["heap_inuse"] < 1<<16 || p["rss"] < 1<<20 || p["stacks"] <= 0 {
			t.Errorf("%s process object implausible: %v", role, p)
		}
		// The counters issue 13's cases move (e2e tests watch them move).
		want := map[string][]string{
			"relay": {"udp_flows_evicted", "udp_datagrams_dropped", "exposures_refused", "duplicate_key", "handshake_junk",
				"handshake_dropped", "cookies_sent", "streams_reset_sent", "streams_stalled_reset"},
			"agent": {"relay_links_lost", "relay_reconnects", "relay_failovers", "handshakes_unanswered", "handshakes_refused",
				"exposures_refused", "exposures_retried", "duplicate_key_notices", "streams_reset_sent", "streams_stalled_reset"},
		}
		for _, k := range want[role] {
			if _, ok := doc.Counters[k]; !ok {
				t.Errorf("%s counters lack %s: %v", role, k, doc.Counters)
			}
		}
		code, out, _ = run(t, "", "status", "--admin", addr)
		if code != 0 || !strings.Contains(out, " goroutines, ") || !strings.Contains(out, " open fds, heap ") {
			t.Errorf("%s status: exit %d, no process line:\n%s", role, code, out)
		}
	}
}

// TestPrintStatusHeartbeat: the human status shows the heartbeat interval,
// whether it is auto, and the measured mapping lifetime.
func TestPrintStatusHeartbeat(t *testing.T) {
	doc := `{"role":"agent","name":"r1","connected":false,"udp_socket":"0.0.0.0:1","heartbeat_s":15.6,"heartbeat_auto":true,
		"nat":{"type":"port-restricted cone","public_address":"198.51.100.10:4000","lifetime_s":26.25}}`
	var st map[string]any
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printStatus(&b, st)
	for _, want := range []string{"heartbeat   15.6s (auto)", "mapping lifetime 26.3s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("got\n%s\nwant a line with %q", b.String(), want)
		}
	}
}

func TestLifetimeLine(t *testing.T) {
	var b strings.Builder
	printLines(&b, [][2]string{{"udp", "ok"}, {"mapping lifetime", lifetimeWords(26*time.Second, nil)}})
	if got, want := b.String(), "udp:             ok\nmapping lifetime: 26 s\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestLifetimeWords(t *testing.T) {
	for _, c := range []struct {
		l    time.Duration
		err  error
		want string
	}{
		{26250 * time.Millisecond, nil, "26 s"},
		{0, agent.ErrShortLifetime, "under 15 s"},
		{0, agent.ErrNoDelay, "unknown (the relay does not support delayed STUN answers)"},
		{0, errors.New("x"), "unknown (x)"},
	} {
		if got := lifetimeWords(c.l, c.err); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

// TestPrintStatusPeers: each peer shows its path (with the direct address
// and how it was found), RTT, bytes, and why the last punch failed.
func TestPrintStatusPeers(t *testing.T) {
	doc := `{"role":"agent","name":"home","connected":true,"udp_socket":"0.0.0.0:1","peers":[
		{"name":"office","path":"direct","direct_addr":"198.51.100.10:4000","found_as":"predicted","rtt_ms":12.5,"bytes_in":100,"bytes_out":200,"strategy":"predict"},
		{"name":"nas","path":"relay","rtt_ms":40,"bytes_in":1,"bytes_out":2,"strategy":"lan-only","last_punch":"2026-11-25T18:00:00Z","last_punch_failure":"no candidate answered"},
		{"name":"cam","path":"connecting","status":"relay says the peer is offline"}]}`
	var st map[string]any
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printStatus(&b, st)
	for _, want := range []string{
		"office           direct 198.51.100.10:4000 (predicted), rtt 12.5 ms, in 100 B, out 200 B, strategy predict",
		"nas              relay, rtt 40 ms",
		"last punch 2026-11-25T18:00:00Z: no candidate answered",
		"cam              connecting: relay says the peer is offline",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("got\n%s\nwant a line with %q", b.String(), want)
		}
	}
}
