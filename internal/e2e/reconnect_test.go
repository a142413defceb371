package e2e

import (
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
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

// TestRelayFlap restarts the relay again and again, 1-3 s apart: the
// agent must not slide into a long backoff; after every start its
// exposure is back within a few seconds (the goal is 3 s).
func TestRelayFlap(t *testing.T) {
	port, relayPort := testenv.FreePort(t), testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:"+strconv.Itoa(int(relayPort)))
	acfg := testenv.AgentConfig(t, rcfg.Listen, rcfg.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Heartbeat, acfg.ReconnectMax = 15*time.Second, 30*time.Second // the defaults
	testenv.Allow(rcfg, acfg, port)
	testenv.StartAgent(t, acfg)
	var worst time.Duration
	var took []string
	for i := range 7 {
		_, _, stop := testenv.StartRelay(t, rcfg)
		started := time.Now()
		d, ok := waitEchoes("127.0.0.1", port, 6*time.Second)
		took = append(took, d.Round(10*time.Millisecond).String())
		worst = max(worst, d)
		if !ok {
			t.Fatalf("start %d: exposure not back within %v (times so far %v)", i+1, d, took)
		}
		time.Sleep(time.Until(started.Add(time.Second + rand.N(2*time.Second))))
		stop()
	}
	t.Logf("exposure back after each relay start: %v (worst %v)", took, worst.Round(10*time.Millisecond))
	if worst > 5*time.Second {
		t.Fatalf("worst recovery %v, want within 5 s", worst)
	}
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
