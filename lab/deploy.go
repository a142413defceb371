package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pinhole/pinhole/protocol/secure"
)

// Ports and addresses of a deployment.
const (
	RelayAddr = RelayIP + ":7700"
	// RelayAltAddr is the relay's alt_listen: its second address, another
	// port (RFC 5780 behaviour discovery).
	RelayAltAddr = RelayIP2 + ":7710"
	TCPExposure  = 9000 // first agent; the n-th agent uses 9000+10n
	UDPExposure  = 9001
)

// Binaries are the programs a deployment runs inside the lab.
type Binaries struct {
	Pinhole string   // pinhole for the relay and for tools
	Agent   []string // how to run the agent's binary (default: Pinhole); e.g. qemu + a cross build
	Probe   string   // lab/cmd/probe
}

// Deployment is a relay on the relay host and agents on site hosts, each
// exposing a TCP echo and a UDP echo running on its own host.
type Deployment struct {
	Lab    *Lab
	Dir    string
	Relay  *Proc
	Agents map[string]*Proc // by host
	bins   Binaries
	hosts  []string
	links  []PeerLink
}

// Deploy writes configs with fresh keys into dir, starts the relay and one
// agent per host, and returns without waiting for them to connect. Its
// processes end with ctx (or when the lab closes).
func Deploy(ctx context.Context, l *Lab, b Binaries, dir, heartbeat string, hosts ...string) (*Deployment, error) {
	return DeployPeers(ctx, l, b, dir, heartbeat, hosts, nil)
}

// DeployPeers is Deploy plus peer sessions: for each link, the exposing
// host offers its echo services to the connecting host (peers), and the
// connecting host reaches them on local ports (connect; see PeerPorts).
func DeployPeers(ctx context.Context, l *Lab, b Binaries, dir, heartbeat string, hosts []string, links []PeerLink) (*Deployment, error) {
	d := &Deployment{Lab: l, Dir: dir, Agents: map[string]*Proc{}, bins: b, hosts: hosts, links: links}
	rk, err := secure.GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	var agents strings.Builder
	for i, h := range hosts {
		ak, _ := secure.GeneratePrivateKey()
		tcp, udp := TCPExposure+10*i, UDPExposure+10*i
		fmt.Fprintf(&agents, "  - name: %s\n    public_key: %s\n    allow_ports: [\"%d/tcp\", \"%d/udp\"]\n", h, ak.Public(), tcp, udp)
		cfg := fmt.Sprintf(`name: %s
private_key: %s
relays:
  - address: %s
    public_key: %s
heartbeat: %s
reconnect_max: 2s
admin: 127.0.0.1:7702
log: {level: debug}
expose:
  - {name: echo, protocol: tcp, local: "127.0.0.1:8000", remote_port: %d%s}
  - {name: uecho, protocol: udp, local: "127.0.0.1:8001", remote_port: %d%s}
%s`, h, ak, RelayAddr, rk.Public(), heartbeat, tcp, d.peersOf(h), udp, d.peersOf(h), d.connectsOf(h))
		if err := os.WriteFile(filepath.Join(dir, h+".yaml"), []byte(cfg), 0o600); err != nil {
			return nil, err
		}
	}
	// The relay listens on its first address and answers RFC 5780
	// discovery from its second one (the relay host has two).
	relayCfg := fmt.Sprintf("listen: %s\nalt_listen: %s\nstate_file: relay.state\nprivate_key: %s\nbind: 0.0.0.0\nadmin: 127.0.0.1:7701\nagent_timeout: 10s\nlog: {level: debug}\nagents:\n%s",
		RelayAddr, RelayAltAddr, rk, agents.String())
	if err := os.WriteFile(filepath.Join(dir, "relay.yaml"), []byte(relayCfg), 0o600); err != nil {
		return nil, err
	}
	if err := d.StartRelay(ctx); err != nil {
		return nil, err
	}
	agentCmd := b.Agent
	if agentCmd == nil {
		agentCmd = []string{b.Pinhole}
	}
	for _, h := range hosts {
		for _, svc := range [][]string{{"tcp-echo", "127.0.0.1:8000"}, {"udp-echo", "127.0.0.1:8001"}} {
			if _, err := l.Start(ctx, h, b.Probe, svc[0], svc[1]); err != nil {
				return nil, err
			}
		}
		p, err := l.Start(ctx, h, append(agentCmd, "agent", "-c", filepath.Join(dir, h+".yaml"))...)
		if err != nil {
			return nil, err
		}
		d.Agents[h] = p
	}
	return d, nil
}

// StartRelay starts (or restarts) the relay process, which ends with ctx,
// and waits until it listens on UDP and TCP, so agents started next do not
// race its startup (their first handshake would go unanswered and be
// retried a second later, which "time to connect" would count).
func (d *Deployment) StartRelay(ctx context.Context) error {
	p, err := d.Lab.Start(ctx, "relay", d.bins.Pinhole, "relay", "-c", filepath.Join(d.Dir, "relay.yaml"))
	d.Relay = p
	if err != nil {
		return err
	}
	_, port, _ := strings.Cut(RelayAddr, ":")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := d.Lab.Run(wctx, "relay", "ss", "-Hlntu", "sport = :"+port)
		cancel()
		if err == nil && strings.Count(out, "\n") >= 2 { // one UDP and one TCP socket
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("relay exited: %s", p.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("relay not listening on %s after 10s: %s", RelayAddr, p.Output())
}

// Exposure returns the public TCP and UDP addresses of host's exposures.
func (d *Deployment) Exposure(host string) (tcp, udp string) {
	for i, h := range d.hosts {
		if h == host {
			return fmt.Sprintf("%s:%d", RelayIP, TCPExposure+10*i), fmt.Sprintf("%s:%d", RelayIP, UDPExposure+10*i)
		}
	}
	return "", ""
}

// TCPResult is one tcp-check.
type TCPResult struct {
	Bytes   int     `json:"bytes"`
	Echoed  int     `json:"echoed"`
	Intact  bool    `json:"intact"`
	Seconds float64 `json:"seconds"`
	Mbps    float64 `json:"mbit_per_s"`
	Error   string  `json:"error"`
}

// TCPCheck sends n random bytes from host to addr's echo and compares the
// sha256 of what comes back.
func (d *Deployment) TCPCheck(host, addr string, n int) TCPResult {
	return d.PacedTCPCheck(host, addr, n, 0)
}

// PacedTCPCheck is TCPCheck sending no faster than mbit Mbit/s (0: as
// fast as it can).
func (d *Deployment) PacedTCPCheck(host, addr string, n int, mbit float64) TCPResult {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := d.Lab.Run(ctx, host, d.bins.Probe, "tcp-check", addr, fmt.Sprint(n), fmt.Sprint(mbit))
	var r TCPResult
	if err != nil {
		r.Error = err.Error()
		return r
	}
	json.Unmarshal([]byte(out), &r)
	return r
}

// UDPResult is one udp-check.
type UDPResult struct {
	Sent     int `json:"sent"`
	Received int `json:"received"`
	Corrupt  int `json:"corrupt"`
}

// UDPCheck sends n self-checking datagrams from host to addr's echo.
func (d *Deployment) UDPCheck(host, addr string, n int) (UDPResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := d.Lab.Run(ctx, host, d.bins.Probe, "udp-check", addr, fmt.Sprint(n))
	var r UDPResult
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal([]byte(out), &r)
}

// WaitReachable polls a 1 KiB check from host to addr until it passes.
func (d *Deployment) WaitReachable(host, addr string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < limit {
		if r := d.TCPCheck(host, addr, 1024); r.Intact {
			return time.Since(start), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s not reachable from %s within %v", addr, host, limit)
}

// Status returns an agent's status document.
func (d *Deployment) Status(host string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := d.Lab.Run(ctx, host, d.bins.Pinhole, "status", "--admin", "127.0.0.1:7702", "--json")
	if err != nil {
		return nil, err
	}
	var st map[string]any
	return st, json.Unmarshal([]byte(out), &st)
}
