package e2e

import (
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/relay"
)

// TestZeroValueConfigs: Configs built in code with only what has no
// default (keys, addresses) work: every other field takes its documented
// default. Before, an agent.Config without Tuning failed with "max receive
// buffer must be positive".
func TestZeroValueConfigs(t *testing.T) {
	rk, ak := testenv.Key(t), testenv.Key(t)
	r, _, _ := testenv.StartRelay(t, &relay.Config{Listen: "127.0.0.1:0", PrivateKey: rk,
		Agents: []relay.AgentEntry{{Name: "bare", PublicKey: ak.Public()}}})
	a, _, _ := testenv.StartAgent(t, &agent.Config{Name: "bare", PrivateKey: ak,
		Relays: []agent.Relay{{Address: r.Addr().String(), PublicKey: rk.Public()}}})
	testenv.WaitFor(t, 10*time.Second, "agent with a zero-value config connected", func() bool { return a.Status().Connected })
}
