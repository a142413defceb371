package e2e

import (
	"crypto/sha256"
	"github.com/pinhole/pinhole/internal/testenv"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/protocol"
)

// TestRelayRestart kills the relay in the middle of a transfer and starts
// a new one on the same port: the agent must re-register by itself.
func TestRelayRestart(t *testing.T) {
	port := testenv.FreePort(t)
	relayPort := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:"+strconv.Itoa(int(relayPort)))
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	testenv.Allow(rcfg, acfg, port)
	r, _, stopRelay := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a, _, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "web") })

	// A transfer that is cut when the relay dies.
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(randomBytes(t, 1<<20))
	stopRelay()
	killed := time.Now()

	r2, _, _ := testenv.StartRelay(t, rcfg)
	testenv.WaitFor(t, 30*time.Second, "agent re-registered with the new relay", func() bool { return testenv.Exposed(r2, "web") && a.Status().Connected })
	t.Logf("recovered %v after the relay restart", time.Since(killed).Round(time.Millisecond))
	payload := randomBytes(t, 2<<20)
	if got := roundTrip(t, port, payload); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("after restart: got %d bytes, want %d intact", len(got), len(payload))
	}
}

// dropUDP is a PacketConn that swallows everything: a firewall that
// blocks UDP to the relay.
type dropUDP struct{ net.PacketConn }

func (d dropUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if _, _, err := d.PacketConn.ReadFrom(p); err != nil {
			return 0, nil, err
		}
	}
}

func TestUDPBlockedFallsBackToTCP(t *testing.T) {
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	rcfg.ListenPacket = wrapUDP(func(pc net.PacketConn) net.PacketConn { return dropUDP{pc} })
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	testenv.Allow(rcfg, acfg, port)
	r, _, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a, alog, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 15*time.Second, "exposure open via the fallback", func() bool { return testenv.Exposed(r, "web") })
	if tr := a.Status().Transport; tr != "tcp" {
		t.Fatalf("agent transport = %q, want tcp", tr)
	}
	if !strings.Contains(alog.String(), "relay does not answer over udp, trying tcp") {
		t.Error("agent log does not explain the fallback")
	}
	payload := randomBytes(t, 4<<20)
	if got := roundTrip(t, port, payload); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("over tcp fallback: got %d bytes, want %d intact", len(got), len(payload))
	}
}

// TestUDPComesBack: an agent on the TCP fallback moves back to UDP once
// UDP works again and no connection would be cut.
func TestUDPComesBack(t *testing.T) {
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	blocked := make(chan struct{})
	rcfg.ListenPacket = wrapUDP(func(pc net.PacketConn) net.PacketConn { return &gateUDP{PacketConn: pc, open: blocked} })
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.UDPProbe = 500 * time.Millisecond
	testenv.Allow(rcfg, acfg, port)
	r, _, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a, _, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 15*time.Second, "agent on tcp", func() bool { return a.Status().Transport == "tcp" && testenv.Exposed(r, "web") })
	close(blocked) // the firewall opens
	testenv.WaitFor(t, 20*time.Second, "agent back on udp", func() bool { return a.Status().Transport == "udp" && testenv.Exposed(r, "web") })
}

// gateUDP drops everything until open is closed.
type gateUDP struct {
	net.PacketConn
	open chan struct{}
}

func (g *gateUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		select {
		case <-g.open:
			return n, addr, nil
		default:
		}
	}
}

// TestGarbageInput sends junk at every port of the relay and the agent:
// nothing may panic, junk is counted, and the tunnel keeps working.
func TestGarbageInput(t *testing.T) {
	p := startPair(t, agent.TransportUDP)
	r, a, port := p.relay, p.agent, p.tcpPort

	junk := [][]byte{{}, {0xA3}, {0xA1, 1, 0, 0}, {0xA3, 0, 0, 0, 1, 2, 3, 4}, make([]byte, 1400), randomBytes(t, 300),
		append([]byte{0xA3, 0, 0, 0, 0, 0, 0, 0}, randomBytes(t, 100)...), append([]byte{0xA1, 1, 0, 0}, randomBytes(t, 150)...)}
	for _, target := range []string{r.Addr().String(), a.LocalAddr()} {
		target = strings.Replace(target, "[::]", "127.0.0.1", 1)
		u, err := net.Dial("udp", target)
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			for _, j := range junk {
				u.Write(j)
			}
		}
		u.Close()
	}
	for _, j := range junk {
		c, err := net.Dial("tcp", r.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(append([]byte{byte(len(j) >> 8), byte(len(j))}, j...))
		c.Close()
	}
	c, _ := net.Dial("tcp", r.Addr().String())
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.Close()

	testenv.WaitFor(t, 10*time.Second, "junk counted by the relay", func() bool {
		cn := r.Counters()
		return cn["malformed"] > 0 && cn["handshake_failed"] > 0 && cn["tcp_rejected"] >= uint64(len(junk))
	})
	testenv.WaitFor(t, 5*time.Second, "junk counted by the agent", func() bool {
		st := a.Status().Counters
		return st["datagrams_malformed"]+st["datagrams_unrouted"] > 0
	})
	t.Logf("relay counters after junk: %v", r.Counters())
	payload := randomBytes(t, 1<<20)
	if got := roundTrip(t, port, payload); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatal("tunnel broken after junk")
	}
}

// TestHandshakeFlood: forged handshakes (each costs the relay two X25519
// operations) arrive as fast as one socket can send them while an agent
// moves data; the transfer must finish intact, the flood be counted.
func TestHandshakeFlood(t *testing.T) {
	p := startPair(t, agent.TransportUDP)
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		// The flood comes from another address than the agents.
		u, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, net.UDPAddrFromAddrPort(p.relay.Addr()))
		if err != nil {
			done <- 0
			return
		}
		defer u.Close()
		fake := append([]byte{0xA1, 1, 0, 0}, randomBytes(t, 112)...)
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			fake[5] = byte(n)
			u.Write(fake)
			n++
		}
	}()
	payload := randomBytes(t, 4<<20)
	start := time.Now()
	got := roundTrip(t, p.tcpPort, payload)
	took := time.Since(start)

	// A new agent must still get in while the flood goes on.
	port := testenv.FreePort(t)
	acfg := testenv.AgentConfig(t, p.relay.Addr().String(), p.relayKey, agent.Exposure{Name: "late", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	cfg := *p.relayCfg
	testenv.Allow(&cfg, acfg, port)
	p.relay.Reload(&cfg)
	joinStart := time.Now()
	testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 15*time.Second, "a new agent registered during the flood", func() bool { return testenv.Exposed(p.relay, "late") })
	joined := time.Since(joinStart)
	close(stop)
	sent := <-done
	c := p.relay.Counters()
	t.Logf("during a flood of %d forged handshakes (answered-and-failed %d, dropped %d): 4 MiB echoed in %v, a new agent registered in %v",
		sent, c["handshake_failed"], c["handshake_dropped"], took.Round(time.Millisecond), joined.Round(time.Millisecond))
	if sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("transfer during the flood: got %d bytes, want %d intact", len(got), len(payload))
	}
	if c["handshake_failed"]+c["handshake_dropped"] == 0 {
		t.Fatal("the flood was not counted")
	}
}

// TestAgentStartsFirst: the agent starts before its relay exists (and its
// first relay name does not even resolve); it keeps retrying, never exits,
// and registers once the relay comes up.
func TestAgentStartsFirst(t *testing.T) {
	port, relayPort := testenv.FreePort(t), testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:"+strconv.Itoa(int(relayPort)))
	acfg := testenv.AgentConfig(t, "127.0.0.1:"+strconv.Itoa(int(relayPort)), rcfg.PrivateKey,
		agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Relays = append([]agent.Relay{{Address: "relay.invalid:7700", PublicKey: rcfg.PrivateKey.Public()}}, acfg.Relays...)
	testenv.Allow(rcfg, acfg, port)
	a, alog, _ := testenv.StartAgent(t, acfg)
	time.Sleep(3 * time.Second) // a few failed rounds against both relays
	if !strings.Contains(alog.String(), "relay unreachable") || a.Status().Connected {
		t.Fatalf("agent should be retrying, log:\n%s", alog)
	}
	r, _, _ := testenv.StartRelay(t, rcfg)
	testenv.WaitFor(t, 20*time.Second, "agent registered once the relay is up", func() bool { return testenv.Exposed(r, "web") })
	if got := roundTrip(t, port, []byte("late but fine")); string(got) != "late but fine" {
		t.Fatalf("echo %q", got)
	}
}

// wrapUDP is a relay.Config.ListenPacket that opens the UDP socket as
// usual and hands the relay wrap's view of it (a drop rule, a kill switch).
func wrapUDP(wrap func(net.PacketConn) net.PacketConn) func(network, address string) (net.PacketConn, error) {
	return func(network, address string) (net.PacketConn, error) {
		pc, err := net.ListenPacket(network, address)
		if err != nil {
			return nil, err
		}
		return wrap(pc), nil
	}
}
