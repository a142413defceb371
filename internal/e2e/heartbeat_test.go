package e2e

import (
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/testenv"
)

// TestHeartbeatChangeFollowedByRelay: an agent that lengthens its heartbeat
// mid-link (a reload here; a measured NAT lifetime later) tells the relay,
// whose watchdog then waits long enough: the link stays up. Before, the
// relay kept the interval from Hello and dropped the agent as silent.
func TestHeartbeatChangeFollowedByRelay(t *testing.T) {
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	rcfg.AgentTimeout = 2 * time.Second
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey)
	acfg.Transport = agent.TransportUDP
	acfg.Heartbeat = 300 * time.Millisecond
	testenv.Allow(rcfg, acfg)
	r, rlog, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a, _, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "agent connected", func() bool { return a.Status().Connected })
	since := *a.Status().Since

	slower := *acfg
	slower.Heartbeat = 5 * time.Second // silence of 4-6 s: beyond 3 x 300 ms + 2 s
	a.Reload(&slower)
	time.Sleep(12 * time.Second)
	st := a.Status()
	if !st.Connected || !st.Since.Equal(since) {
		t.Fatalf("link did not survive the slower heartbeat: connected %v, since %v -> %v\nrelay log:\n%s", st.Connected, since, st.Since, rlog.String())
	}
}
