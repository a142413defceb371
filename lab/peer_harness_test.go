package lab

import (
	"testing"
	"time"
)

// peers wraps a Deployment with peer links for the peer session tests.
type peers struct {
	*Deployment
	started time.Time
}

// startPeers deploys a relay and agents on hosts with the given links and
// logs the agents' and the relay's output when the test fails.
func startPeers(t *testing.T, l *Lab, hosts []string, links ...PeerLink) *peers {
	t.Helper()
	start := time.Now()
	d, err := DeployPeers(testCtx(t), l, Binaries{Pinhole: bins.pinhole, Probe: bins.probe}, labDir(t, l), "2s", hosts, links)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("relay log:\n%s", tail(d.Relay.Output()))
			for h, p := range d.Agents {
				t.Logf("%s log:\n%s", h, tail(p.Output()))
			}
		}
	})
	return &peers{Deployment: d, started: start}
}

// firstEcho waits until a 1 KiB echo from from to to's TCP service passes
// through the peer session and returns the time since the agents started.
func (p *peers) firstEcho(t *testing.T, from, to string) time.Duration {
	t.Helper()
	tcp, _ := p.PeerPorts(from, to)
	if _, err := p.WaitReachable(from, tcp, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return time.Since(p.started)
}

// echo sends n bytes from from through the peer session to to's echo and
// fails the test unless they come back intact.
func (p *peers) echo(t *testing.T, from, to string, n int) TCPResult {
	t.Helper()
	tcp, _ := p.PeerPorts(from, to)
	r := p.TCPCheck(from, tcp, n)
	if !r.Intact {
		t.Fatalf("%s -> %s: %d of %d bytes echoed, sha256 equal=%v (%s)", from, to, r.Echoed, r.Bytes, r.Intact, r.Error)
	}
	return r
}

// peer returns from's status entry for its session with to.
func (p *peers) peer(t *testing.T, from, to string) PeerStatus {
	t.Helper()
	st, ok, err := p.Peer(from, to)
	if err != nil || !ok {
		t.Fatalf("%s status of peer %s: found=%v err=%v", from, to, ok, err)
	}
	return st
}
