package e2e

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
)

// TestPortInUseRetried: another process on the relay host, or another
// agent, holds the exposure's public port; the exposure is refused, and
// comes up by itself (no SIGHUP) within seconds of the port becoming free.
func TestPortInUseRetried(t *testing.T) {
	for _, holder := range []string{"process", "agent"} {
		t.Run(holder, func(t *testing.T) {
			port := testenv.FreePort(t)
			rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
			acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
			other := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "squat", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
			other.Name = "router2"
			testenv.Allow(rcfg, acfg, port)
			testenv.Allow(rcfg, other, port)
			r, rlog, _ := testenv.StartRelay(t, rcfg)
			acfg.Relays[0].Address, other.Relays[0].Address = r.Addr().String(), r.Addr().String()
			var free func()
			if holder == "process" {
				squatter, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(int(port)))
				if err != nil {
					t.Fatal(err)
				}
				defer squatter.Close()
				free = func() { squatter.Close() }
			} else {
				_, _, stop := testenv.StartAgent(t, other)
				testenv.WaitFor(t, 10*time.Second, "other agent holds the port", func() bool { return testenv.Exposed(r, "squat") })
				free = stop
			}
			a, alog, _ := testenv.StartAgent(t, acfg)
			refused := func() bool {
				ex := a.Status().Exposures
				return len(ex) == 1 && ex[0].Status == protocol.StatusPortInUse.String()
			}
			testenv.WaitFor(t, 10*time.Second, "exposure refused: port in use", refused)
			time.Sleep(2 * time.Second) // a few retries while the port stays taken
			ac, rc := a.Status().Counters, r.Counters()
			t.Logf("agent status while refused: %+v; agent exposures_refused %d, exposures_retried %d; relay exposures_refused %d",
				a.Status().Exposures, ac["exposures_refused"], ac["exposures_retried"], rc["exposures_refused"])
			if ac["exposures_refused"] == 0 || ac["exposures_retried"] == 0 || rc["exposures_refused"] == 0 {
				t.Errorf("status counters do not show the refusals and retries: agent exposures_refused %d, exposures_retried %d; relay exposures_refused %d",
					ac["exposures_refused"], ac["exposures_retried"], rc["exposures_refused"])
			}
			free()
			d, ok := waitEchoes("127.0.0.1", port, 15*time.Second)
			t.Logf("freed port picked up after %v", d.Round(10*time.Millisecond))
			if !ok || d > 10*time.Second {
				t.Fatalf("exposure not up %v after the port was freed; agent log:\n%s", d, tail(alog.String(), 20))
			}
			if n := strings.Count(alog.String(), "exposure refused by relay"); n > 1 {
				t.Errorf("agent logged the same refusal %d times, want once", n)
			}
			if n := strings.Count(rlog.String(), "level=WARN msg=\"exposure refused\""); n > 1 {
				t.Errorf("relay logged the same refusal %d times at warn, want once", n)
			}
		})
	}
}

// TestDuplicateKeySettles: two agents configured with the same key replace
// each other on the relay. The relay must notice, both ends must name the
// likely cause, and the replacements must stop.
func TestDuplicateKeySettles(t *testing.T) {
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	// Short, so the refused twin comes back several times in the test:
	// the relay must keep refusing it, not let it replace the other.
	acfg.ReconnectMax = 3 * time.Second
	testenv.Allow(rcfg, acfg, port)
	r, rlog, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a1, alog1, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "first agent registered", func() bool { return testenv.Exposed(r, "web") })
	twin := *acfg
	twin.Name = "router1-clone"
	a2, alog2, _ := testenv.StartAgent(t, &twin)

	time.Sleep(10 * time.Second) // detection and settling
	c0 := r.Counters()
	time.Sleep(10 * time.Second)
	c1 := r.Counters()
	t.Logf("replacements: %d in the first 10 s, %d in the next 10 s; twin refused %d times in those 10 s",
		c0["replaced"], c1["replaced"]-c0["replaced"], c1["duplicate_key"]-c0["duplicate_key"])
	if c1["replaced"] != c0["replaced"] {
		t.Errorf("agents still replace each other: %d replacements in 10 s after settling", c1["replaced"]-c0["replaced"])
	}
	if !strings.Contains(rlog.String(), "two agents appear to use the key") {
		t.Error("relay log does not name the duplicate key")
	}
	const agentLine = "level=ERROR msg=\"another agent uses this agent's key"
	if !strings.Contains(alog1.String()+alog2.String(), agentLine) {
		t.Error("no agent log names the duplicate key")
	}
	if n := strings.Count(alog1.String(), agentLine) + strings.Count(alog2.String(), agentLine); n > 2 {
		t.Errorf("agents logged the duplicate key %d times, want once each at most", n)
	}
	if !echoes("127.0.0.1", port) {
		t.Error("exposure not reachable after the agents settled")
	}
	if n := a1.Status().Counters["duplicate_key_notices"] + a2.Status().Counters["duplicate_key_notices"]; n == 0 {
		t.Error("neither agent's status counts a duplicate-key notice")
	}
}
