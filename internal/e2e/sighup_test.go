package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol/secure"
)

// buildPinhole builds the binary once per test binary run.
func buildPinhole(t *testing.T) string {
	t.Helper()
	pinholeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pinhole-e2e-")
		if err != nil {
			pinholeErr = err
			return
		}
		pinholeBin = filepath.Join(dir, "pinhole")
		if out, err := exec.Command("go", "build", "-o", pinholeBin, "../../cmd/pinhole").CombinedOutput(); err != nil {
			pinholeErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if pinholeErr != nil {
		t.Fatal(pinholeErr)
	}
	return pinholeBin
}

var (
	pinholeOnce sync.Once
	pinholeBin  string
	pinholeErr  error
)

// TestSIGHUPWithTheBinary runs the real pinhole binary as relay and agent
// processes, rewrites agent.yaml (one exposure added, one removed) and sends
// SIGHUP while a third exposure carries a transfer; then rewrites it with a
// mistake and sends SIGHUP again (refused, nothing changes); then SIGTERM
// must stop both cleanly (exit 0).
func TestSIGHUPWithTheBinary(t *testing.T) {
	dir := t.TempDir()
	bin := buildPinhole(t)
	rk, _ := secure.GeneratePrivateKey()
	ak, _ := secure.GeneratePrivateKey()
	relayPort, busy, old, added := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	echo := testenv.EchoTCP(t)
	os.WriteFile(filepath.Join(dir, "relay.yaml"), fmt.Appendf(nil, "listen: 127.0.0.1:%d\nprivate_key: %s\nbind: 127.0.0.1\nadmin: off\nagents:\n  - name: r1\n    public_key: %s\n    allow_ports: [%d, %d, %d]\n",
		relayPort, rk, ak.Public(), busy, old, added), 0o600)
	agentYAML := func(exposures ...string) []byte {
		s := fmt.Sprintf("name: r1\nprivate_key: %s\nrelays:\n  - address: 127.0.0.1:%d\n    public_key: %s\nadmin: off\nport_mapping: off\nheartbeat: 1s\nexpose:\n", ak, relayPort, rk.Public())
		for _, e := range exposures {
			s += e
		}
		return []byte(s)
	}
	exp := func(name string, port uint16) string {
		return fmt.Sprintf("  - {name: %s, protocol: tcp, local: %q, remote_port: %d}\n", name, echo, port)
	}
	agentCfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(agentCfg, agentYAML(exp("busy", busy), exp("old", old)), 0o600)

	start := func(role, cfg string) (*exec.Cmd, *testenv.LogBuffer) {
		var log testenv.LogBuffer
		cmd := exec.Command(bin, role, "-c", cfg)
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &log
	}
	relay, rlog := start("relay", filepath.Join(dir, "relay.yaml"))
	agent, alog := start("agent", agentCfg)
	reachable := func(port uint16) bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), 500*time.Millisecond)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte("x"))
		_, err = c.Read(make([]byte, 1))
		return err == nil
	}
	testenv.WaitFor(t, 15*time.Second, "busy and old exposures", func() bool { return reachable(busy) && reachable(old) })

	tr := startTransfer(t, busy, 4<<20)

	os.WriteFile(agentCfg, agentYAML(exp("busy", busy), exp("added", added)), 0o600)
	agent.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, 10*time.Second, "added exposure after SIGHUP", func() bool { return reachable(added) })
	testenv.WaitFor(t, 10*time.Second, "old exposure gone after SIGHUP", func() bool { return !reachable(old) })

	tr.finish(t, "SIGHUP")

	// A broken edit is refused; the running exposures stay.
	os.WriteFile(agentCfg, append(agentYAML(exp("busy", busy)), []byte("  - {name: bad, local: \"127.0.0.1:1\", remote_port: 99999}\n")...), 0o600)
	agent.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, 5*time.Second, "reload refusal in the agent log", func() bool {
		return strings.Contains(alog.String(), "reload refused, keeping the running config") && strings.Contains(alog.String(), "remote_port: 99999 is out of range")
	})
	if !reachable(added) || !reachable(busy) {
		t.Fatal("a refused reload changed the running exposures")
	}

	for name, cmd := range map[string]*exec.Cmd{"agent": agent, "relay": relay} {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s exited with %v after SIGTERM, want 0", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10s of SIGTERM", name)
		}
	}
	if t.Failed() {
		t.Logf("relay log:\n%s\nagent log:\n%s", rlog, alog)
	}
}
