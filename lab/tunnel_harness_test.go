package lab

import (
	"strings"
	"testing"
	"time"
)

// tunnel wraps a one-agent Deployment for the tests.
type tunnel struct {
	*Deployment
	l              *Lab
	host           string
	relay, agent   *Proc
	connectedAfter time.Duration
}

type tunnelOpts struct {
	agentCmd  []string // how to run the agent binary (default: the amd64 build)
	heartbeat string
}

func startTunnel(t testing.TB, l *Lab, host string, o tunnelOpts) *tunnel {
	t.Helper()
	if o.heartbeat == "" {
		o.heartbeat = "2s"
	}
	start := time.Now()
	d, err := Deploy(testCtx(t), l, Binaries{Pinhole: bins.pinhole, Agent: o.agentCmd, Probe: bins.probe}, labDir(t, l), o.heartbeat, host)
	if err != nil {
		t.Fatal(err)
	}
	tu := &tunnel{Deployment: d, l: l, host: host, relay: d.Relay, agent: d.Agents[host]}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay log:\n%s\nagent log:\n%s", tail(d.Relay.Output()), tail(tu.agent.Output()))
		}
	})
	tu.waitReachable(t, 30*time.Second)
	tu.connectedAfter = time.Since(start)
	return tu
}

func (tu *tunnel) startRelay(t *testing.T) {
	t.Helper()
	if err := tu.StartRelay(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	tu.relay = tu.Relay
}

func (tu *tunnel) waitReachable(t testing.TB, limit time.Duration) time.Duration {
	t.Helper()
	tcp, _ := tu.Exposure(tu.host)
	took, err := tu.WaitReachable("client", tcp, limit)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// tcpCheck sends n random bytes from the internet client through the
// relay's TCP exposure and compares the echo's sha256.
func (tu *tunnel) tcpCheck(t testing.TB, n int) TCPResult {
	tcp, _ := tu.Exposure(tu.host)
	return tu.TCPCheck("client", tcp, n)
}

func (tu *tunnel) udpCheck(t *testing.T, n int) UDPResult {
	t.Helper()
	_, udp := tu.Exposure(tu.host)
	r, err := tu.UDPCheck("client", udp, n)
	if err != nil {
		t.Fatalf("udp-check: %v", err)
	}
	return r
}

func (tu *tunnel) status(t *testing.T) map[string]any {
	t.Helper()
	st, err := tu.Status(tu.host)
	if err != nil {
		t.Fatalf("pinhole status: %v", err)
	}
	return st
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
