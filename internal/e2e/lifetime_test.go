package e2e

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/netsim"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/relay"
)

// natTimeout is the simulated NAT's mapping lifetime (RFC 4787 REQ-5 asks
// for 2 minutes; home routers often keep 30 s), scaled down with the
// probe schedule below so that the tests take seconds.
const natTimeout = 4 * time.Second

// scaledLifetime is the agent's real schedule (15 s to 300 s) scaled down
// about 15 times, with one bisection round.
var scaledLifetime = agent.LifetimeSchedule{
	First:     []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second, 8 * time.Second},
	Max:       20 * time.Second,
	Step:      250 * time.Millisecond,
	Precision: 0.1,
	PerRound:  3,
	Rounds:    1,
	Margin:    400 * time.Millisecond,
	Warmup:    200 * time.Millisecond,
}

// behindShortNAT runs a real relay on a simulated public host (exposures
// and TCP fallback on loopback) and an agent behind a port-restricted NAT
// whose mappings live natTimeout, with a TCP echo exposed; it returns the
// agent, the relay, the NAT, the public port and the agent's log.
func behindShortNAT(t *testing.T, typ netsim.NATType, tweak func(*agent.Config)) (*agent.Agent, *relay.Relay, *netsim.NAT, uint16, *testenv.LogBuffer) {
	t.Helper()
	inet := netsim.New(netsim.Options{})
	t.Cleanup(func() { inet.Close() }) // after agent and relay stop
	relayAP := netip.MustParseAddrPort("203.0.113.1:7700")
	rh, _ := inet.AddHost(relayAP.Addr())
	natCfg, _ := typ.Config()
	natCfg.Timeout = natTimeout
	nat, err := inet.AddNAT(netip.MustParseAddr("198.51.100.10"), natCfg)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := nat.Inside().AddHost(netip.MustParseAddr("192.168.1.2"))
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, relayAP.String())
	rcfg.ListenPacket = rh.ListenPacket
	rcfg.ListenTCP = func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }
	// The relay's own timeout is short, so its watchdog runs on the
	// agent's announced heartbeat (Hello, then SetHeartbeat).
	rcfg.AgentTimeout = 2 * time.Second
	acfg := testenv.AgentConfig(t, relayAP.String(), rcfg.PrivateKey,
		agent.Exposure{Name: "echo", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	acfg.ListenPacket = host.ListenPacket
	tweak(acfg)
	testenv.Allow(rcfg, acfg, port)
	r, _, _ := testenv.StartRelay(t, rcfg)
	a, alog, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "agent connected with its exposure", func() bool {
		st := a.Status()
		return st.Connected && len(st.Exposures) == 1 && st.Exposures[0].Status == "ok"
	})
	return a, r, nat, port, alog
}

// echoWithin sends a few bytes through the exposure and reports how long
// the echo took, or an error when it did not come back within d.
func echoWithin(port uint16, d time.Duration) (time.Duration, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), d)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(start.Add(d))
	payload := []byte("still there?")
	if _, err := c.Write(payload); err != nil {
		return 0, err
	}
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		return 0, err
	}
	if !bytes.Equal(got, payload) {
		return 0, io.ErrUnexpectedEOF
	}
	return time.Since(start), nil
}

// idle waits d without traffic of the test's own and reports whether the
// NAT kept the agent's mapping toward the relay all along (sampled every
// 100 ms).
func idle(a *agent.Agent, nat *netsim.NAT, relayAP netip.AddrPort, d time.Duration) (kept bool) {
	local := netip.MustParseAddrPort(a.LocalAddr())
	kept = true
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, ok := nat.Mapped(local, relayAP); !ok {
			kept = false
		}
	}
	return kept
}

// autoScaled is heartbeat auto with the scaled schedule and a minimum
// below the simulated NAT's timeout.
func autoScaled(c *agent.Config) {
	c.Heartbeat, c.HeartbeatMin, c.Lifetime = 0, 500*time.Millisecond, scaledLifetime
}

// TestHeartbeatAutoKeepsMapping: behind a NAT that forgets an idle mapping
// after 4 s, heartbeat auto measures the lifetime, pings under it, the
// relay follows the announced interval, and an exposure is reachable at
// once after idling 2.5 times the NAT's timeout, without a reconnect.
func TestHeartbeatAutoKeepsMapping(t *testing.T) {
	a, r, nat, port, _ := behindShortNAT(t, netsim.PortRestricted, autoScaled)
	since := *a.Status().Since
	var st agent.Status
	testenv.WaitFor(t, 30*time.Second, "mapping lifetime measured", func() bool {
		st = a.Status()
		return st.NAT != nil && st.NAT.LifetimeSeconds != nil
	})
	lifetime := time.Duration(*st.NAT.LifetimeSeconds * float64(time.Second))
	hb := time.Duration(st.HeartbeatSeconds * float64(time.Second))
	t.Logf("NAT timeout %v: measured lifetime %v, heartbeat %v (auto %v)", natTimeout, lifetime, hb, st.HeartbeatAuto)
	if lifetime < natTimeout*7/10 || lifetime > natTimeout*13/10 {
		t.Fatalf("measured %v, want within 30 %% of %v", lifetime, natTimeout)
	}
	if !st.HeartbeatAuto || hb > lifetime*81/100 || hb < 500*time.Millisecond {
		t.Fatalf("heartbeat %v (auto %v), want 0.8 x %v", hb, st.HeartbeatAuto, lifetime)
	}
	// The retuned heartbeat re-creates the mapping if it lapsed while the
	// lifetime was measured; from then on it must hold.
	time.Sleep(2 * hb)
	const idleFor = 10 * time.Second
	kept := idle(a, nat, netip.MustParseAddrPort("203.0.113.1:7700"), idleFor)
	took, err := echoWithin(port, 2*time.Second)
	if err != nil {
		t.Fatalf("echo after %v idle: %v (mapping kept: %v)", idleFor, err, kept)
	}
	t.Logf("after %v idle (NAT timeout %v): mapping kept %v, echo in %v", idleFor, natTimeout, kept, took.Round(time.Millisecond))
	if !kept {
		t.Error("the NAT dropped the agent's mapping during the idle period")
	}
	if s := a.Status().Since; s == nil || !s.Equal(since) {
		t.Errorf("the agent reconnected (since %v, was %v)", s, since)
	}
	if ags := r.Status().Agents; len(ags) != 1 {
		t.Errorf("relay has %d agents, want 1", len(ags))
	}
}

// TestFixedHeartbeatOutlivedByNAT shows why auto matters: a fixed heartbeat
// (12 s) longer than the NAT's timeout (4 s) lets the mapping expire
// between pings, and a client reaching the exposure then waits for the
// agent's next ping instead of being served.
func TestFixedHeartbeatOutlivedByNAT(t *testing.T) {
	a, _, nat, port, _ := behindShortNAT(t, netsim.PortRestricted, func(c *agent.Config) { c.Heartbeat = 12 * time.Second })
	// Right after a Pong: the next ping is 9.6-14.4 s away.
	testenv.WaitFor(t, 5*time.Second, "NAT check done", func() bool { return a.Status().NAT != nil })
	pongs := a.Status().Counters["pongs"]
	testenv.WaitFor(t, 20*time.Second, "a heartbeat", func() bool { return a.Status().Counters["pongs"] > pongs })
	kept := idle(a, nat, netip.MustParseAddrPort("203.0.113.1:7700"), natTimeout+time.Second)
	_, err := echoWithin(port, 2*time.Second)
	t.Logf("after %v idle: mapping kept %v, echo: %v", natTimeout+time.Second, kept, err)
	if kept || err == nil {
		t.Fatalf("mapping kept %v, echo error %v: want the mapping gone and the exposure unreachable until the next ping", kept, err)
	}
	if a.Status().NAT.LifetimeSeconds != nil {
		t.Error("a fixed heartbeat measured the lifetime anyway")
	}
}

// TestHeartbeatAutoRemeasures: when the NAT forgets the agent's mapping
// (a router reboot) and a symmetric NAT gives it a new public address, the
// agent measures the lifetime of the new network again, and is back on
// the tuned heartbeat afterwards without a reconnect.
func TestHeartbeatAutoRemeasures(t *testing.T) {
	a, _, nat, _, alog := behindShortNAT(t, netsim.Symmetric, autoScaled)
	since := *a.Status().Since
	measured := func() int { return strings.Count(alog.String(), "NAT mapping lifetime measured") }
	testenv.WaitFor(t, 30*time.Second, "mapping lifetime measured", func() bool { return measured() == 1 })
	before := a.Status().Observed
	nat.Flush()
	testenv.WaitFor(t, 10*time.Second, "a new public address", func() bool { return a.Status().Observed != before })
	testenv.WaitFor(t, 30*time.Second, "mapping lifetime measured again", func() bool { return measured() == 2 })
	st := a.Status()
	t.Logf("public %s -> %s, lifetime %.2fs, heartbeat %.2fs", before, st.Observed, *st.NAT.LifetimeSeconds, st.HeartbeatSeconds)
	if st.HeartbeatSeconds > 3 || !st.Since.Equal(since) {
		t.Fatalf("heartbeat %vs, since %v (was %v): want the tuned heartbeat on the same link", st.HeartbeatSeconds, st.Since, since)
	}
}
