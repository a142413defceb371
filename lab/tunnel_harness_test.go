package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol/secure"
)

// Ports of the end-to-end setup.
const (
	tcpExposure = 9000
	udpExposure = 9001
	relayAddr   = RelayIP + ":7700"
)

// tunnel is a relay on the relay host and an agent on a site host exposing
// a TCP echo and a UDP echo that run on that host.
type tunnel struct {
	l              *Lab
	host           string
	dir            string
	relay, agent   *Proc
	connectedAfter time.Duration
}

type tunnelOpts struct {
	agentCmd  []string // how to run the agent binary (default: the amd64 build)
	heartbeat string
}

func startTunnel(t *testing.T, l *Lab, host string, o tunnelOpts) *tunnel {
	t.Helper()
	tu := &tunnel{l: l, host: host, dir: t.TempDir()}
	rk, _ := secure.GeneratePrivateKey()
	ak, _ := secure.GeneratePrivateKey()
	if o.heartbeat == "" {
		o.heartbeat = "2s"
	}
	writeFile(t, filepath.Join(tu.dir, "relay.yaml"), fmt.Sprintf(`listen: 0.0.0.0:7700
private_key: %s
bind: 0.0.0.0
admin: 127.0.0.1:7701
agent_timeout: 10s
log: {level: debug}
agents:
  - name: %s
    public_key: %s
    allow_ports: ["%d/tcp", "%d/udp"]
`, rk, host, ak.Public(), tcpExposure, udpExposure))
	writeFile(t, filepath.Join(tu.dir, "agent.yaml"), fmt.Sprintf(`name: %s
private_key: %s
relays:
  - address: %s
    public_key: %s
heartbeat: %s
reconnect_max: 2s
admin: 127.0.0.1:7702
log: {level: debug}
expose:
  - name: echo
    protocol: tcp
    local: 127.0.0.1:8000
    remote_port: %d
  - name: uecho
    protocol: udp
    local: 127.0.0.1:8001
    remote_port: %d
`, host, ak, relayAddr, rk.Public(), o.heartbeat, tcpExposure, udpExposure))
	tu.startRelay(t)
	for _, svc := range [][]string{{"tcp-echo", "127.0.0.1:8000"}, {"udp-echo", "127.0.0.1:8001"}} {
		if _, err := l.Start(host, bins.probe, svc[0], svc[1]); err != nil {
			t.Fatal(err)
		}
	}
	cmd := o.agentCmd
	if cmd == nil {
		cmd = []string{bins.pinhole}
	}
	start := time.Now()
	var err error
	if tu.agent, err = l.Start(host, append(cmd, "agent", "-c", filepath.Join(tu.dir, "agent.yaml"))...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("relay log:\n%s\nagent log:\n%s", tail(tu.relay.Output()), tail(tu.agent.Output()))
		}
	})
	tu.waitReachable(t, 30*time.Second)
	tu.connectedAfter = time.Since(start)
	return tu
}

func (tu *tunnel) startRelay(t *testing.T) {
	t.Helper()
	var err error
	tu.relay, err = tu.l.Start("relay", bins.pinhole, "relay", "-c", filepath.Join(tu.dir, "relay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
}

// waitReachable polls a small TCP check from the client until it passes.
func (tu *tunnel) waitReachable(t *testing.T, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if r := tu.tcpCheck(t, 1024); r.Intact {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("exposure not reachable from the client within %v", d)
	return 0
}

type tcpResult struct {
	Bytes   int     `json:"bytes"`
	Echoed  int     `json:"echoed"`
	Intact  bool    `json:"intact"`
	Seconds float64 `json:"seconds"`
	Mbps    float64 `json:"mbit_per_s"`
	Error   string  `json:"error"`
}

// tcpCheck sends n random bytes from the internet client through the
// relay's TCP exposure and compares the echo's sha256.
func (tu *tunnel) tcpCheck(t *testing.T, n int) tcpResult {
	return tcpCheckFrom(t, tu.l, "client", fmt.Sprintf("%s:%d", RelayIP, tcpExposure), n)
}

func tcpCheckFrom(t *testing.T, l *Lab, host, addr string, n int) tcpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := l.Run(ctx, host, bins.probe, "tcp-check", addr, fmt.Sprint(n))
	var r tcpResult
	if err != nil {
		r.Error = err.Error()
		return r
	}
	json.Unmarshal([]byte(out), &r)
	return r
}

type udpResult struct {
	Sent     int `json:"sent"`
	Received int `json:"received"`
	Corrupt  int `json:"corrupt"`
}

func (tu *tunnel) udpCheck(t *testing.T, n int) udpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := tu.l.Run(ctx, "client", bins.probe, "udp-check", fmt.Sprintf("%s:%d", RelayIP, udpExposure), fmt.Sprint(n))
	if err != nil {
		t.Fatalf("udp-check: %v", err)
	}
	var r udpResult
	json.Unmarshal([]byte(out), &r)
	return r
}

// status returns the agent's status document.
func (tu *tunnel) status(t *testing.T) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := tu.l.Run(ctx, tu.host, bins.pinhole, "status", "--admin", "127.0.0.1:7702", "--json")
	if err != nil {
		t.Fatalf("pinhole status: %v", err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status: %v in %q", err, out)
	}
	return st
}

func writeFile(t *testing.T, path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
