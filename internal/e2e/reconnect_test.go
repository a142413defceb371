package e2e

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
)

// killSwitch is the relay's UDP socket until kill is called; from then on
// it drops everything both ways, like a relay host that lost power: no
// goodbye notice, no Refuse, nothing.
type killSwitch struct {
	net.PacketConn
	dead atomic.Bool
}

func (k *killSwitch) kill() { k.dead.Store(true) }

func (k *killSwitch) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := k.PacketConn.ReadFrom(p)
		if err != nil || !k.dead.Load() {
			return n, addr, err
		}
	}
}

func (k *killSwitch) WriteTo(p []byte, addr net.Addr) (int, error) {
	if k.dead.Load() {
		return len(p), nil
	}
	return k.PacketConn.WriteTo(p, addr)
}

// echoes reports whether one byte sent to the TCP echo exposure on
// host:port comes back, with short deadlines so callers can poll.
func echoes(host string, port uint16) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))), 500*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	if c.LocalAddr().String() == c.RemoteAddr().String() {
		// Nothing listens and the kernel picked the port itself as the
		// source: a TCP simultaneous open with itself, which "echoes".
		return false
	}
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		return false
	}
	_, err = c.Read(make([]byte, 1))
	return err == nil
}

// waitEchoes polls echoes until it holds or d passes and returns how long
// it took (or d and false).
func waitEchoes(host string, port uint16, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < d {
		if echoes(host, port) {
			return time.Since(start), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d, false
}

// TestRelayFlap restarts the relay 20 times, 1-3 s apart: the agent must
// not slide into a long backoff (before, the backoff reset only after a
// link that lived 10 s, and exposures came back after up to 33 s): after
// every start its exposure is back within 3 s. Every other relay dies
// silently (its socket drops everything first, so no goodbye reaches the
// agent) with a download and an upload in flight: the public client and
// the local service each get a reset, never the clean end of stream that
// would make a truncated transfer look complete.
func TestRelayFlap(t *testing.T) {
	const restarts, bound = 20, 3 * time.Second
	port, downPort, upPort, relayPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:"+strconv.Itoa(int(relayPort)))
	// A relay that died silently under an idle agent can only invite it
	// back from its state file (TestLongHeartbeatRelayKill); a graceful
	// one said goodbye.
	rcfg.StateFile = filepath.Join(t.TempDir(), "relay.state")
	serviceErr := make(chan error, restarts)
	acfg := testenv.AgentConfig(t, rcfg.Listen, rcfg.PrivateKey,
		agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port},
		agent.Exposure{Name: "down", Proto: protocol.ProtoTCP, Local: testenv.ServeTCP(t, writeForever), RemotePort: downPort},
		agent.Exposure{Name: "up", Proto: protocol.ProtoTCP, Local: testenv.ServeTCP(t, func(c *net.TCPConn) {
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			_, err := io.Copy(io.Discard, c)
			serviceErr <- err
		}), RemotePort: upPort})
	acfg.Heartbeat, acfg.ReconnectMax = 15*time.Second, 30*time.Second // the defaults
	testenv.Allow(rcfg, acfg, port, downPort, upPort)
	a, _, _ := testenv.StartAgent(t, acfg)
	var worst time.Duration
	var took []string
	pending := 0 // uploads cut by a silent death whose service has not answered yet
	for i := range restarts {
		silent := i%2 == 1
		cfg := *rcfg
		ks := &killSwitch{}
		cfg.ListenPacket = wrapUDP(func(pc net.PacketConn) net.PacketConn { ks.PacketConn = pc; return ks })
		r, _, stop := testenv.StartRelay(t, &cfg)
		started := time.Now()
		d, ok := waitEchoes("127.0.0.1", port, 2*bound)
		for ok && !(testenv.Exposed(r, "down") && testenv.Exposed(r, "up")) {
			if d = time.Since(started); d > 2*bound {
				ok = false
			}
			time.Sleep(20 * time.Millisecond)
		}
		took = append(took, d.Round(10*time.Millisecond).String())
		worst = max(worst, d)
		if !ok {
			t.Fatalf("start %d: exposure not back within %v (times so far %v)", i+1, d, took)
		}
		var down net.Conn
		if silent {
			down = inFlight(t, downPort, upPort)
		}
		time.Sleep(time.Until(started.Add(time.Second + rand.N(2*time.Second))))
		if !silent {
			stop()
			continue
		}
		ks.kill()
		stop()
		down.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, down); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("start %d, silent death: client downloading got %v, want ECONNRESET", i+1, err)
		}
		down.Close()
		// The agent learns of the death from the next relay (its packets
		// draw "unknown session"); the service's verdict is read below.
		pending++
	}
	// The last death has no next relay: the agent finds it by its own
	// heartbeat, up to one interval later, then 6 s of unanswered probes
	// (a CI run saw 20 s pass: a fixed 20 s wait raced that schedule).
	wait := acfg.Heartbeat + 15*time.Second
	for range pending {
		select {
		case err := <-serviceErr:
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("silent death: service reading an upload got %v, want ECONNRESET", err)
			}
		case <-time.After(wait):
			t.Errorf("silent death: service still reading %v after the link died", wait)
		}
	}
	c := a.Status().Counters
	t.Logf("exposure back after each relay start: %v (worst %v); agent relay_links_lost %d, relay_reconnects %d",
		took, worst.Round(10*time.Millisecond), c["relay_links_lost"], c["relay_reconnects"])
	if worst > bound {
		t.Errorf("worst recovery %v, want within %v of the relay's start", worst, bound)
	}
	if c["relay_reconnects"] < restarts-1 || c["relay_links_lost"] < restarts-1 {
		t.Errorf("status counters: relay_reconnects %d, relay_links_lost %d after %d relay restarts, want at least %d",
			c["relay_reconnects"], c["relay_links_lost"], restarts, restarts-1)
	}
}

// inFlight starts a download from downPort (read 64 KiB of it, then left
// unread) and an upload to upPort that keeps sending; it returns the
// download's connection.
func inFlight(t *testing.T, downPort, upPort uint16) net.Conn {
	t.Helper()
	down, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(downPort)), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { down.Close() })
	down.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(down, make([]byte, 64<<10)); err != nil {
		t.Fatalf("download before the relay died: %v", err)
	}
	up, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(upPort)), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	go func() {
		chunk := make([]byte, 16<<10)
		up.SetWriteDeadline(time.Now().Add(30 * time.Second))
		for {
			if _, err := up.Write(chunk); err != nil {
				return
			}
		}
	}()
	return down
}

// TestRelayRestartLogsOnce: the relay dies silently while the agent has
// data in flight and comes back on the same port; every queued packet is
// refused as "unknown session", but the agent says so once per link.
func TestRelayRestartLogsOnce(t *testing.T) {
	port, relayPort := testenv.FreePort(t), testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:"+strconv.Itoa(int(relayPort)))
	ks := &killSwitch{}
	cfg1 := *rcfg
	cfg1.ListenPacket = wrapUDP(func(pc net.PacketConn) net.PacketConn { ks.PacketConn = pc; return ks })
	// The local service streams without end, so the agent always has a
	// window of packets in flight towards the relay (and the relay none
	// towards the agent, so its goodbye is not stuck behind a full window).
	source := testenv.ServeTCP(t, func(c *net.TCPConn) {
		defer c.Close()
		b := randomBytes(t, 32<<10)
		for {
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	})
	acfg := testenv.AgentConfig(t, rcfg.Listen, rcfg.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: source, RemotePort: port})
	acfg.Transport = agent.TransportUDP
	testenv.Allow(rcfg, acfg, port)
	cfg1.Agents = rcfg.Agents
	r1, _, stop1 := testenv.StartRelay(t, &cfg1)
	_, alog, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r1, "web") })

	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go io.Copy(io.Discard, c)
	time.Sleep(300 * time.Millisecond)
	ks.kill()
	stop1()
	r2, _, _ := testenv.StartRelay(t, rcfg)
	testenv.WaitFor(t, 15*time.Second, "agent back on the new relay", func() bool { return testenv.Exposed(r2, "web") })
	time.Sleep(500 * time.Millisecond) // late refusals would be logged by now
	n := strings.Count(alog.String(), "relay does not know our session")
	t.Logf("unknown-session lines: %d; relay refused %d packets", n, r2.Counters()["unknown_session"])
	if n > 1 {
		t.Fatalf("agent logged the lost session %d times for one link, want once", n)
	}
}
