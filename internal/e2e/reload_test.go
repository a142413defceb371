package e2e

import (
	"crypto/sha256"
	"fmt"
	"github.com/pinhole/pinhole/internal/testenv"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/relay"
)

// transfer is an echo transfer started before a reload and finished after
// it, to prove connections survive the reload.
type transfer struct {
	c       net.Conn
	payload []byte
	result  chan []byte
}

// startTransfer connects to the echo exposure at port, sends the first
// quarter of n random bytes and starts reading the echo.
func startTransfer(t *testing.T, port uint16, n int) *transfer {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	tr := &transfer{c: c, payload: randomBytes(t, n), result: make(chan []byte, 1)}
	go func() { b, _ := io.ReadAll(c); tr.result <- b }()
	c.Write(tr.payload[:n/4])
	return tr
}

// finish sends the rest and checks the whole echo by sha256.
func (tr *transfer) finish(t *testing.T, across string) {
	t.Helper()
	tr.c.Write(tr.payload[len(tr.payload)/4:])
	tr.c.(*net.TCPConn).CloseWrite()
	if got := <-tr.result; sha256.Sum256(got) != sha256.Sum256(tr.payload) {
		t.Fatalf("transfer across %s: got %d bytes, want %d intact", across, len(got), len(tr.payload))
	}
}

// TestAgentReload adds one exposure and removes another while a third
// carries a transfer: the transfer must finish intact.
func TestAgentReload(t *testing.T) {
	busyPort, oldPort, newPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	busy := agent.Exposure{Name: "busy", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: busyPort}
	old := agent.Exposure{Name: "old", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: oldPort}
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, busy, old)
	testenv.Allow(rcfg, acfg, busyPort, oldPort, newPort)
	r, _, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a, _, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposures open", func() bool { return testenv.Exposed(r, "busy") && testenv.Exposed(r, "old") })

	// Start a slow transfer on "busy".
	tr := startTransfer(t, busyPort, 4<<20)

	next := *acfg
	next.Expose = []agent.Exposure{busy, {Name: "new", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: newPort}}
	a.Reload(&next)
	testenv.WaitFor(t, 10*time.Second, "new exposure open and old one closed", func() bool { return testenv.Exposed(r, "new") && !testenv.Exposed(r, "old") })

	tr.finish(t, "the reload")
	if got := roundTrip(t, newPort, []byte("hello")); string(got) != "hello" {
		t.Fatalf("new exposure echoed %q", got)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(oldPort)), time.Second); err == nil {
		c.Close()
		t.Fatal("removed exposure still accepts connections")
	}
}

// TestRelayReload narrows one agent's allow-list and removes another's key.
func TestRelayReload(t *testing.T) {
	keepPort, losePort, gonePort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	a1 := testenv.AgentConfig(t, "", rcfg.PrivateKey,
		agent.Exposure{Name: "keep", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: keepPort},
		agent.Exposure{Name: "lose", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: losePort})
	a2 := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "gone", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: gonePort})
	a2.Name = "router2"
	a2.ReconnectMax = time.Hour
	testenv.Allow(rcfg, a1, keepPort, losePort)
	testenv.Allow(rcfg, a2, gonePort)
	r, rlog, _ := testenv.StartRelay(t, rcfg)
	a1.Relays[0].Address = r.Addr().String()
	a2.Relays[0].Address = r.Addr().String()
	_, a1log, _ := testenv.StartAgent(t, a1)
	_, a2log, _ := testenv.StartAgent(t, a2)
	testenv.WaitFor(t, 10*time.Second, "all exposures open", func() bool {
		return testenv.Exposed(r, "keep") && testenv.Exposed(r, "lose") && testenv.Exposed(r, "gone")
	})

	next := *rcfg
	next.Agents = []relay.AgentEntry{{Name: a1.Name, PublicKey: a1.PrivateKey.Public(), Allow: []relay.PortRange{{Low: keepPort, High: keepPort}}}}
	r.Reload(&next)

	testenv.WaitFor(t, 10*time.Second, "router2 disconnected and lose closed", func() bool {
		return !testenv.Exposed(r, "gone") && !testenv.Exposed(r, "lose") && testenv.Exposed(r, "keep")
	})
	testenv.WaitFor(t, 5*time.Second, "agents told why", func() bool {
		return strings.Contains(a2log.String(), "no longer listed on the relay") &&
			strings.Contains(a1log.String(), "removed from allow_ports on the relay")
	})
	if !strings.Contains(rlog.String(), "agent key removed from config, disconnecting") {
		t.Error("relay log does not say why router2 was dropped")
	}
	if got := roundTrip(t, keepPort, []byte("still here")); string(got) != "still here" {
		t.Fatalf("kept exposure echoed %q", got)
	}
	// router2 keeps retrying and keeps being refused.
	time.Sleep(1500 * time.Millisecond)
	if testenv.Exposed(r, "gone") {
		t.Fatal("removed agent came back")
	}
}

// TestAgentGoneFreesPorts: an agent that stops cleanly frees its ports at
// once (it says goodbye); one that dies silently frees them after
// agent_timeout.
func TestAgentGoneFreesPorts(t *testing.T) {
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	rcfg.AgentTimeout = 2 * time.Second
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	testenv.Allow(rcfg, acfg, port)
	r, rlog, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()

	_, _, stop := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "web") })
	stopped := time.Now()
	stop()
	// Within 3 s: the relay would only time this agent out after 5 s
	// (3 announced 1 s heartbeats + 2 s), so this proves the goodbye.
	testenv.WaitFor(t, 3*time.Second, "port freed after a clean stop", func() bool { return !testenv.Exposed(r, "web") })
	t.Logf("clean stop: port freed %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	if !strings.Contains(rlog.String(), "agent is leaving") {
		t.Error("relay log does not record the goodbye")
	}

	// A silent death: the agent process is killed (SIGKILL, a power cut),
	// so no goodbye; the relay frees the port after agent_timeout.
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, "name: router1\nprivate_key: %s\nrelays:\n  - address: %s\n    public_key: %s\ntransport: udp\nheartbeat: 1s\nadmin: off\nport_mapping: off\nexpose:\n  - {name: web, local: %q, remote_port: %d}\n",
		acfg.PrivateKey, r.Addr(), rcfg.PrivateKey.Public(), acfg.Expose[0].Local, port), 0o600)
	proc := exec.Command(buildPinhole(t), "agent", "-c", cfgPath)
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "exposure open again", func() bool { return testenv.Exposed(r, "web") })
	proc.Process.Kill()
	proc.Wait()
	died := time.Now()
	testenv.WaitFor(t, 10*time.Second, "port freed after agent_timeout", func() bool { return !testenv.Exposed(r, "web") })
	t.Logf("killed agent: port freed %v after the kill (agent_timeout 2s, heartbeat 1s)", time.Since(died).Round(time.Millisecond))
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), time.Second); err == nil {
		c.Close()
		t.Fatal("freed port still accepts connections")
	}
}
