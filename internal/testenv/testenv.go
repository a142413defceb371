// Package testenv starts real relays, agents and local services on
// loopback for the end-to-end tests and the benchmarks, and cleans them up
// when the test ends. It is test support only; no binary imports it.
package testenv

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/protocol/secure"
	"github.com/pinhole/pinhole/relay"
)

// LogBuffer collects log lines so tests can assert on what an operator sees.
type LogBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b = append(l.b, p...)
	l.mu.Unlock()
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

func NewLogger(buf *LogBuffer, role string) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("role", role)
}

func Key(t testing.TB) secure.PrivateKey {
	t.Helper()
	k, err := secure.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// handedOut is every port FreePort returned or ClaimPort claimed in this
// process: a port stays free until its user binds it, so it could be
// offered twice, and two of a test's ports must never be one (CI: a relay
// and the exposure behind it on the same port).
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a port free on 127.0.0.1 for both TCP and UDP right
// now, and never one it returned before in this process. It picks from
// below the kernel's ephemeral range: a port from that range may become
// the source port of any outgoing connection on the machine (another
// test package's, the agent's own dial to its local service) between
// now and the moment its user binds it, and a listener cannot bind a
// port an outgoing connection holds (CI: an exposure refused as "port
// in use" until the test gave up).
func FreePort(t testing.TB) uint16 {
	t.Helper()
	low, high := fixedPortRange()
	for range 1000 {
		if port := uint16(low + rand.N(high-low)); ClaimPort(port) {
			return port
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// ClaimPort reports whether port is free on 127.0.0.1 for TCP and UDP
// right now and was never handed out in this process (by FreePort or an
// earlier ClaimPort); if so it is handed out now. Tests that need ports
// of their own choosing (a fleet's consecutive ports) claim them here so
// FreePort never returns one of them.
func ClaimPort(port uint16) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	if handedOut.ports[int(port)] {
		return false
	}
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	pc, err := net.ListenPacket("udp", addr)
	ln.Close()
	if err != nil {
		return false
	}
	pc.Close()
	handedOut.ports[int(port)] = true
	return true
}

// fixedPortRange is where FreePort looks: from 10000 up to the start of
// the kernel's ephemeral range (32768 where it cannot be read).
func fixedPortRange() (low, high int) {
	low, high = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var eph int
		if _, err := fmt.Sscan(string(b), &eph); err == nil && eph > low+1000 {
			high = eph
		}
	}
	return low, high
}

func RelayConfig(t testing.TB, listen string) *relay.Config {
	return &relay.Config{Listen: listen, PrivateKey: Key(t), Bind: "127.0.0.1", Tuning: link.DefaultTuning(),
		AgentTimeout: 10 * time.Second, UDPFlowIdle: 5 * time.Second}
}

// StartRelay runs a relay until the test ends (or stop is called).
func StartRelay(t testing.TB, cfg *relay.Config) (*relay.Relay, *LogBuffer, func()) {
	t.Helper()
	buf := &LogBuffer{}
	r, err := relay.New(cfg, NewLogger(buf, "relay"))
	if err != nil {
		t.Fatal(err)
	}
	logOnFailure(t, "relay", buf)
	stop := runUntilStopped(t, "relay", r.Run)
	return r, buf, stop
}

func AgentConfig(t testing.TB, relayAddr string, relayKey secure.PrivateKey, expose ...agent.Exposure) *agent.Config {
	return &agent.Config{Name: "router1", PrivateKey: Key(t), Transport: agent.TransportAuto,
		Relays:    []agent.Relay{{Address: relayAddr, PublicKey: relayKey.Public()}},
		Heartbeat: time.Second, ReconnectMax: 2 * time.Second, Tuning: link.DefaultTuning(),
		UDPWait: time.Second, Expose: expose}
}

func StartAgent(t testing.TB, cfg *agent.Config) (*agent.Agent, *LogBuffer, func()) {
	t.Helper()
	buf := &LogBuffer{}
	a, err := agent.New(cfg, NewLogger(buf, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	logOnFailure(t, "agent", buf)
	stop := runUntilStopped(t, "agent", a.Run)
	return a, buf, stop
}

// logOnFailure prints the end of a relay's or agent's log (64 KiB at
// most) when the test fails, after it has stopped, so that a failure in CI
// comes with what the processes saw. Verbose runs print logs as they go.
func logOnFailure(t testing.TB, what string, buf *LogBuffer) {
	t.Cleanup(func() {
		if !t.Failed() || testing.Verbose() {
			return
		}
		s := buf.String()
		if len(s) > 64<<10 {
			s = "...\n" + s[len(s)-64<<10:]
		}
		t.Logf("%s log:\n%s", what, s)
	})
}

// runUntilStopped runs run in the background until the returned stop is
// called or the test ends, and fails the test if it does not return within
// 10 s of being asked to stop.
func runUntilStopped(t testing.TB, what string, run func(context.Context) error) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { run(ctx); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				var stacks strings.Builder
				pprof.Lookup("goroutine").WriteTo(&stacks, 1)
				t.Errorf("%s did not stop within 10s; goroutines:\n%s", what, stacks.String())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Allow lists an agent on the relay with the given allowed ports.
func Allow(cfg *relay.Config, a *agent.Config, ports ...uint16) {
	entry := relay.AgentEntry{Name: a.Name, PublicKey: a.PrivateKey.Public()}
	for _, p := range ports {
		entry.Allow = append(entry.Allow, relay.PortRange{Low: p, High: p})
	}
	cfg.Agents = append(cfg.Agents, entry)
}

// WaitFor polls cond every 20ms until it holds or d passes.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exposed reports whether the relay shows the named exposure open.
func Exposed(r *relay.Relay, name string) bool {
	for _, a := range r.Status().Agents {
		for _, e := range a.Exposures {
			if e.Name == name {
				return true
			}
		}
	}
	return false
}

// ServeTCP listens on a loopback port until the test ends and runs handle
// for each connection in its own goroutine; it returns the address.
func ServeTCP(t testing.TB, handle func(*net.TCPConn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c.(*net.TCPConn))
		}
	}()
	return ln.Addr().String()
}

// EchoTCP serves a TCP echo on loopback until the test ends.
func EchoTCP(t testing.TB) string {
	return ServeTCP(t, func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
		c.Close()
	})
}

// EchoUDP serves a UDP echo on loopback until the test ends.
func EchoUDP(t testing.TB) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	pc.(*net.UDPConn).SetReadBuffer(1 << 20)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], addr)
		}
	}()
	return pc.LocalAddr().String()
}
