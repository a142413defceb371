package netsim_test

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/netsim"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
)

var (
	relayAP = netip.MustParseAddrPort("203.0.113.10:7700")
	natIP   = netip.MustParseAddr("203.0.113.101")
	cgnIP   = netip.MustParseAddr("203.0.113.111")
	openIP  = netip.MustParseAddr("203.0.113.121")
	homeWAN = netip.MustParseAddr("100.64.1.2") // RFC 6598, the carrier's inside
	lanIP   = netip.MustParseAddr("10.0.1.2")
)

// agentCase is where the agent sits: behind NAT (none: on the internet),
// optionally behind a carrier NAT too.
type agentCase struct {
	name  string
	nat   netsim.NATType
	cgnat bool
	tweak func(*netsim.NATConfig)
}

// placed is an agent host and the NATs above it, innermost first.
type placed struct {
	host *netsim.Host
	nats []*netsim.NAT
}

// public is the address the relay sees for the agent's socket local:
// each NAT's mapping toward the relay, applied from the inside out.
func (p placed) public(local netip.AddrPort) (netip.AddrPort, bool) {
	addr := local
	for _, n := range p.nats {
		var ok bool
		if addr, ok = n.Mapped(addr, relayAP); !ok {
			return netip.AddrPort{}, false
		}
	}
	return addr, true
}

func place(t *testing.T, inet *netsim.Network, c agentCase) placed {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg, ok := c.nat.Config()
	if !ok {
		h, err := inet.AddHost(openIP)
		must(err)
		return placed{host: h}
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	var p placed
	outer, ext := inet, natIP
	if c.cgnat {
		carrierCfg, _ := netsim.PortRestricted.Config()
		carrier, err := inet.AddNAT(cgnIP, carrierCfg)
		must(err)
		p.nats = []*netsim.NAT{carrier}
		outer, ext = carrier.Inside(), homeWAN
	}
	home, err := outer.AddNAT(ext, cfg)
	must(err)
	p.nats = append([]*netsim.NAT{home}, p.nats...)
	p.host, err = home.Inside().AddHost(lanIP)
	must(err)
	return p
}

// TestAgentBehindNAT runs a real relay on a simulated public host and a
// real agent behind each NAT preset, over UDP: the agent connects, its
// exposure opens on the relay (a real loopback port), its status shows the
// NAT's mapping as its public address, and bytes cross the tunnel.
func TestAgentBehindNAT(t *testing.T) {
	cases := []agentCase{
		{name: "none", nat: netsim.None},
		{name: "full-cone", nat: netsim.FullCone},
		{name: "restricted-cone", nat: netsim.RestrictedCone},
		{name: "port-restricted", nat: netsim.PortRestricted},
		{name: "symmetric", nat: netsim.Symmetric},
		{name: "symmetric-seq", nat: netsim.SymmetricSeq},
		{name: "cgnat/port-restricted", nat: netsim.PortRestricted, cgnat: true},
		{name: "cgnat/symmetric", nat: netsim.Symmetric, cgnat: true},
		{name: "port-restricted/loss-delay", nat: netsim.PortRestricted, tweak: func(c *netsim.NATConfig) {
			c.Loss, c.Seed, c.Delay, c.Jitter = 0.02, 1, 5*time.Millisecond, time.Millisecond
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			inet := netsim.New(netsim.Options{})
			t.Cleanup(func() { inet.Close() }) // after agent and relay stop (cleanups run last first)
			at := place(t, inet, c)
			a, port := startPair(t, inet, at.host)
			testenv.WaitFor(t, 5*time.Second, "agent connected over udp", func() bool {
				st := a.Status()
				return st.Connected && st.Transport == "udp" && len(st.Exposures) == 1 && st.Exposures[0].Status == "ok"
			})
			connected := time.Since(start)
			local := netip.MustParseAddrPort(a.LocalAddr())
			want, ok := at.public(local)
			if !ok {
				t.Fatalf("no NAT mapping for the agent's socket %v toward the relay", local)
			}
			if got := a.Status().Observed; got != want.String() {
				t.Errorf("agent's public address %s, want the NAT's mapping %v", got, want)
			}
			payload := bytes.Repeat([]byte("pinhole "), 8<<10) // 64 KiB
			if got := echoThrough(t, port, payload); !bytes.Equal(got, payload) {
				t.Errorf("echo through the tunnel: got %d bytes, want %d intact", len(got), len(payload))
			}
			t.Logf("connected in %v, public %v, 64 KiB echoed after %v", connected.Round(time.Millisecond), want, time.Since(start).Round(time.Millisecond))
		})
	}
}

// startPair starts a relay on 203.0.113.10:7700 of inet (its TCP fallback
// and exposures on real loopback sockets) and an agent on host with one
// TCP exposure of a loopback echo service; it returns the agent and the
// exposure's public port.
func startPair(t *testing.T, inet *netsim.Network, host *netsim.Host, tweak ...func(*agent.Config)) (*agent.Agent, uint16) {
	t.Helper()
	relayHost, err := inet.AddHost(relayAP.Addr())
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, relayAP.String())
	rcfg.ListenPacket = relayHost.ListenPacket
	rcfg.ListenTCP = func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }
	acfg := testenv.AgentConfig(t, relayAP.String(), rcfg.PrivateKey,
		agent.Exposure{Name: "echo", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	acfg.ListenPacket = host.ListenPacket
	for _, f := range tweak {
		f(acfg)
	}
	testenv.Allow(rcfg, acfg, port)
	testenv.StartRelay(t, rcfg)
	a, _, _ := testenv.StartAgent(t, acfg)
	return a, port
}

// echoThrough sends payload to the relay's public port and reads the echo.
func echoThrough(t *testing.T, port uint16, payload []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Errorf("read echo: %v", err)
	}
	return got
}

// TestAgentFollowsFlushedMapping: a symmetric NAT forgets its mappings
// (a router reboot); the agent's next heartbeat leaves on a new port, the
// relay validates the new path and moves there, and the agent's status
// shows the new mapping, without a reconnect.
func TestAgentFollowsFlushedMapping(t *testing.T) {
	inet := netsim.New(netsim.Options{})
	t.Cleanup(func() { inet.Close() })
	at := place(t, inet, agentCase{nat: netsim.Symmetric})
	// The relay learns the new mapping from the agent's next packet: a
	// short heartbeat bounds the wait for one on an idle link.
	a, port := startPair(t, inet, at.host, func(c *agent.Config) { c.Heartbeat = 200 * time.Millisecond })
	testenv.WaitFor(t, 5*time.Second, "agent connected", func() bool { return a.Status().Connected && len(a.Status().Exposures) == 1 })
	local := netip.MustParseAddrPort(a.LocalAddr())
	before, _ := at.public(local)
	since := a.Status().Since
	at.nats[0].Flush()
	flushed := time.Now()
	var after netip.AddrPort
	testenv.WaitFor(t, 5*time.Second, "agent's public address follows the new mapping", func() bool {
		var ok bool
		after, ok = at.public(local)
		return ok && after != before && a.Status().Observed == after.String()
	})
	t.Logf("mapping %v -> %v, followed in %v", before, after, time.Since(flushed).Round(time.Millisecond))
	if s := a.Status().Since; s == nil || !s.Equal(*since) {
		t.Errorf("connected since %v, was %v: the agent reconnected instead of moving", s, since)
	}
	payload := bytes.Repeat([]byte("moved "), 1<<10)
	if got := echoThrough(t, port, payload); !bytes.Equal(got, payload) {
		t.Errorf("echo after the move: got %d bytes, want %d intact", len(got), len(payload))
	}
}
