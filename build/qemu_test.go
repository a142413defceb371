package build

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/testenv"
)

// routerTargets are the router builds run under qemu-user, each over a
// different transport so that UDP, TCP and auto all cross an emulated
// big- and little-endian, 32- and 64-bit agent.
var routerTargets = []struct {
	arch      string // dist/<arch>/pinhole
	qemu      string
	transport string
}{
	{"mipsel_24kc", "qemu-mipsel-static", "udp"},
	{"mips_24kc", "qemu-mips-static", "tcp"},
	{"arm_cortex-a7_neon-vfpv4", "qemu-arm-static", "auto"},
	{"arm_arm926ej-s", "qemu-arm-static", "udp"},
	{"aarch64_generic", "qemu-aarch64-static", "udp"},
}

// Bytes pushed through the TCP exposure: many KCP windows and smux frames,
// still well under a second on an emulated core. (Rates under qemu-user
// say little about a real router; they are logged only to spot a collapse.)
const tunnelBytes = 2 << 20

// TestQEMUTunnel runs each router build as an agent under qemu-user against
// the amd64 relay on loopback: the agent registers, a TCP exposure carries
// a transfer both ways and a UDP exposure echoes a datagram, and SIGTERM
// stops the agent with status 0.
func TestQEMUTunnel(t *testing.T) {
	dist := os.Getenv("PINHOLE_DIST")
	if dist == "" {
		t.Skip("set PINHOLE_DIST=dist (make pkg-test does) to run the router builds under qemu-user")
	}
	if !filepath.IsAbs(dist) {
		t.Fatalf("PINHOLE_DIST=%s: want an absolute path (go test runs in build/)", dist)
	}
	relayBin := filepath.Join(dist, "x86_64", "pinhole")
	if _, err := os.Stat(relayBin); err != nil {
		t.Fatalf("no relay binary: %v (run build/cross.sh)", err)
	}
	for _, tc := range routerTargets {
		t.Run(tc.arch, func(t *testing.T) {
			qemu, err := exec.LookPath(tc.qemu)
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s missing (apt-get install qemu-user-static)", tc.qemu)
				}
				t.Skipf("%s not installed", tc.qemu)
			}
			runTunnel(t, relayBin, []string{qemu, filepath.Join(dist, tc.arch, "pinhole")}, tc.transport)
		})
	}
}

func runTunnel(t *testing.T, relayBin string, agentCmd []string, transport string) {
	dir := t.TempDir()
	rk, ak := testenv.Key(t), testenv.Key(t)
	relayPort, webPort, dnsPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	web, dns := testenv.EchoTCP(t), testenv.EchoUDP(t)
	relayYAML := filepath.Join(dir, "relay.yaml")
	agentYAML := filepath.Join(dir, "agent.yaml")
	write(t, relayYAML, fmt.Sprintf(`listen: 127.0.0.1:%d
private_key: %s
bind: 127.0.0.1
admin: off
agents:
  - name: router
    public_key: %s
    allow_ports: [%d/tcp, %d/udp]
`, relayPort, rk, ak.Public(), webPort, dnsPort))
	write(t, agentYAML, fmt.Sprintf(`name: router
private_key: %s
relays:
  - address: 127.0.0.1:%d
    public_key: %s
transport: %s
admin: off
port_mapping: off
heartbeat: 2s
expose:
  - {name: web, protocol: tcp, local: %q, remote_port: %d}
  - {name: dns, protocol: udp, local: %q, remote_port: %d}
`, ak, relayPort, rk.Public(), transport, web, webPort, dns, dnsPort))

	relay := start(t, "relay", relayBin, "relay", "-c", relayYAML)
	began := time.Now()
	agent := start(t, "agent", append(agentCmd, "agent", "-c", agentYAML)...)

	// The relay opens the public port once the agent registered the exposure.
	want := make([]byte, tunnelBytes)
	rand.Read(want)
	var (
		c   net.Conn
		err error
	)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", webPort), time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || agent.exited() {
			t.Fatalf("exposure never opened on the relay: %v\nrelay log:\n%s\nagent log:\n%s", err, relay.log, agent.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	up := time.Since(began)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t0 := time.Now()
	go func() {
		c.Write(want)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	took := time.Since(t0)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("TCP through the %s agent: got %d bytes (err %v), want the %d sent back\nagent log:\n%s", transport, len(got), err, len(want), agent.log)
	}

	u, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	buf := make([]byte, 2048)
	ping := []byte("pinhole qemu udp ping")
	echoed := false
	for range 20 { // UDP is lossy by contract: retry a few times
		u.Write(ping)
		u.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, err := u.Read(buf); err == nil && bytes.Equal(buf[:n], ping) {
			echoed = true
			break
		}
	}
	if !echoed {
		t.Fatalf("UDP exposure never echoed\nagent log:\n%s", agent.log)
	}
	t.Logf("%s over %s: exposure open %v after start, %d KiB echoed in %v (%.1f MiB/s each way), UDP echoed",
		filepath.Base(agentCmd[0]), transport, up.Round(time.Millisecond), tunnelBytes>>10, took.Round(time.Millisecond),
		float64(tunnelBytes)/took.Seconds()/(1<<20))

	if code := agent.stop(t, 10*time.Second); code != 0 {
		t.Fatalf("agent exited with %d after SIGTERM, want 0\nagent log:\n%s", code, agent.log)
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// proc is a pinhole process the test started; t.Cleanup kills it if the
// test did not stop it.
type proc struct {
	cmd  *exec.Cmd
	log  *logBuffer
	done chan struct{}
	err  error // set before done closes
}

func start(t *testing.T, role string, argv ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), log: &logBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", role, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s log:\n%s", role, p.log)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and returns the exit status, or fails the test when
// the process outlives d.
func (p *proc) stop(t *testing.T, d time.Duration) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatalf("still running %v after SIGTERM", d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// logBuffer collects a process's output; unlike testenv.LogBuffer it never
// echoes to stderr, so `go test -v` shows only the measurements.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
