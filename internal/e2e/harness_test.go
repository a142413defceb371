package e2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol/secure"
	"github.com/pinhole/pinhole/relay"
)

// logBuffer collects log lines so tests can assert on what an operator sees.
type logBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b = append(l.b, p...)
	l.mu.Unlock()
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

func newLogger(buf *logBuffer, role string) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("role", role)
}

func key(t testing.TB) secure.PrivateKey {
	t.Helper()
	k, err := secure.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// freePort returns a port free on 127.0.0.1 for both TCP and UDP right now.
func freePort(t testing.TB) uint16 {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		ln.Close()
		if err == nil {
			pc.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free port")
	return 0
}

type env struct {
	t        *testing.T
	relayKey secure.PrivateKey
	relayCfg *relay.Config
	relay    *relay.Relay
	relayLog *logBuffer
	stopRly  func()
}

func newRelayConfig(t *testing.T, listen string) *relay.Config {
	return &relay.Config{Listen: listen, PrivateKey: key(t), Bind: "127.0.0.1", Tuning: link.DefaultTuning(),
		AgentTimeout: 10 * time.Second, UDPFlowIdle: 5 * time.Second}
}

// startRelay runs a relay until the test ends (or stop is called).
func startRelay(t *testing.T, cfg *relay.Config) (*relay.Relay, *logBuffer, func()) {
	t.Helper()
	buf := &logBuffer{}
	r, err := relay.New(cfg, newLogger(buf, "relay"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("relay did not stop within 10s")
			}
		})
	}
	t.Cleanup(stop)
	return r, buf, stop
}

func newAgentConfig(t *testing.T, relayAddr string, relayKey secure.PrivateKey, expose ...agent.Exposure) *agent.Config {
	return &agent.Config{Name: "router1", PrivateKey: key(t), Transport: agent.TransportAuto,
		Relays:    []agent.Relay{{Address: relayAddr, PublicKey: relayKey.Public()}},
		Heartbeat: time.Second, ReconnectMax: 2 * time.Second, Tuning: link.DefaultTuning(),
		UDPWait: time.Second, Expose: expose}
}

func startAgent(t *testing.T, cfg *agent.Config) (*agent.Agent, *logBuffer, func()) {
	t.Helper()
	buf := &logBuffer{}
	a, err := agent.New(cfg, newLogger(buf, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("agent did not stop within 10s")
			}
		})
	}
	t.Cleanup(stop)
	return a, buf, stop
}

// allow lists an agent on the relay with the given allowed ports.
func allow(cfg *relay.Config, a *agent.Config, ports ...uint16) {
	entry := relay.AgentEntry{Name: a.Name, PublicKey: a.PrivateKey.Public()}
	for _, p := range ports {
		entry.Allow = append(entry.Allow, relay.PortRange{Low: p, High: p})
	}
	cfg.Agents = append(cfg.Agents, entry)
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exposed reports whether the relay shows the named exposure open.
func exposed(r *relay.Relay, name string) bool {
	for _, a := range r.Status().Agents {
		for _, e := range a.Exposures {
			if e.Name == name {
				return true
			}
		}
	}
	return false
}

// echoTCP serves a TCP echo on loopback until the test ends.
func echoTCP(t *testing.T) string {
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
			go func() {
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// echoUDP serves a UDP echo on loopback until the test ends.
func echoUDP(t *testing.T) string {
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
