package e2e

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/netsim"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
)

// TestPeerSessionOutlivesRelayRestart: the agent's parts run as siblings
// (agent.Run), so losing the relay link touches nothing else. While the
// relay is down and redialled, a peer session on a direct path keeps
// carrying a transfer and stays direct, and the agent keeps its NAT facts;
// the transfer arrives intact and the agent is back on the new relay.
func TestPeerSessionOutlivesRelayRestart(t *testing.T) {
	w := newPeerWorld(t)
	office := w.agentOn(w.site(netsim.PortRestricted), "192.168.1.2", "office")
	home := w.agentOn(w.site(netsim.PortRestricted), "192.168.1.2", "home")
	listen := peerPair(t, office, home, protocol.ProtoTCP)
	_, _, stopRelay := testenv.StartRelay(t, w.rcfg)
	testenv.StartAgent(t, office)
	ha, _, _ := testenv.StartAgent(t, home)
	echoThrough(t, listen, randomBytes(t, 4<<10))
	testenv.WaitFor(t, 10*time.Second, "a direct path", func() bool { return peerPath(ha, "office") == "direct" })
	testenv.WaitFor(t, 10*time.Second, "home's NAT facts", func() bool { return ha.Status().NAT != nil })

	// A transfer paced to last through the relay's absence: 6 MiB at
	// about 1 MiB/s, echoed back.
	payload, got := pacedEcho(t, listen, 6<<20)

	time.Sleep(500 * time.Millisecond)
	stopRelay()
	stopped := time.Now()
	testenv.WaitFor(t, 15*time.Second, "home notices its relay is gone", func() bool { return !ha.Status().Connected })
	lost := time.Since(stopped)
	if p := peerPath(ha, "office"); p != "direct" {
		t.Fatalf("with the relay down the peer session is on %q, want still direct", p)
	}
	if ha.Status().NAT == nil {
		t.Fatal("losing the relay link cleared home's NAT facts")
	}
	testenv.StartRelay(t, w.rcfg)
	restarted := time.Now()
	testenv.WaitFor(t, 15*time.Second, "home back on the restarted relay", func() bool { return ha.Status().Connected })
	back := time.Since(restarted)
	b := <-got
	if sha256.Sum256(b) != sha256.Sum256(payload) {
		t.Fatalf("transfer across the relay's restart: %d of %d bytes, or content differs", len(b), len(payload))
	}
	if p := peerPath(ha, "office"); p != "direct" {
		t.Fatalf("after the relay's restart the peer session is on %q, want direct", p)
	}
	echoThrough(t, listen, randomBytes(t, 64<<10))
	t.Logf("relay link lost %v after the stop, back %v after the restart; the peer session stayed direct and 6 MiB arrived intact",
		lost.Round(time.Millisecond), back.Round(time.Millisecond))
}
