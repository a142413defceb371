package e2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/netsim"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/relay"
)

// peerWorld is a relay on a simulated internet and agents behind
// simulated NATs, the relay's STUN server answering from two addresses so
// the agents learn their NAT facts.
type peerWorld struct {
	t    *testing.T
	inet *netsim.Network
	rcfg *relay.Config
	r    *relay.Relay
	ip1  netip.Addr
	nats int
}

func newPeerWorld(t *testing.T) *peerWorld {
	inet := netsim.New(netsim.Options{})
	t.Cleanup(func() { inet.Close() })
	ip1, ip2 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
	h1, _ := inet.AddHost(ip1)
	h2, _ := inet.AddHost(ip2)
	rcfg := testenv.RelayConfig(t, netip.AddrPortFrom(ip1, 7700).String())
	rcfg.AltListen = netip.AddrPortFrom(ip2, 7701).String()
	rcfg.ListenPacket = func(network, address string) (net.PacketConn, error) {
		if ap, err := netip.ParseAddrPort(address); err == nil && ap.Addr() == ip2 {
			return h2.ListenPacket(network, address)
		}
		return h1.ListenPacket(network, address)
	}
	rcfg.ListenTCP = func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }
	return &peerWorld{t: t, inet: inet, rcfg: rcfg, ip1: ip1}
}

// site puts a new NAT of the given type on the internet and returns a
// host inside it (or on the internet itself for netsim.None).
func (w *peerWorld) site(typ netsim.NATType) *netsim.Network {
	w.nats++
	cfg, ok := typ.Config()
	if !ok {
		return w.inet
	}
	cfg.Seed = uint64(time.Now().UnixNano()) // random ports differ from run to run
	nat, err := w.inet.AddNAT(netip.AddrFrom4([4]byte{198, 51, 100, byte(10 * w.nats)}), cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return nat.Inside()
}

// agentOn makes an agent config for a host at ip on network n.
func (w *peerWorld) agentOn(n *netsim.Network, ip string, name string) *agent.Config {
	host, err := n.AddHost(netip.MustParseAddr(ip))
	if err != nil {
		w.t.Fatal(err)
	}
	acfg := testenv.AgentConfig(w.t, netip.AddrPortFrom(w.ip1, 7700).String(), w.rcfg.PrivateKey)
	acfg.Name = name
	acfg.Transport = agent.TransportUDP
	acfg.ListenPacket = host.ListenPacket
	testenv.Allow(w.rcfg, acfg)
	return acfg
}

func (w *peerWorld) start() {
	w.r, _, _ = testenv.StartRelay(w.t, w.rcfg)
}

// peerPair configures office (exposing echo to home) and home (connecting
// to it on a local port) and returns home's local address.
func peerPair(t *testing.T, office, home *agent.Config, proto protocol.Proto) string {
	local := testenv.EchoTCP(t)
	if proto == protocol.ProtoUDP {
		local = testenv.EchoUDP(t)
	}
	office.Expose = append(office.Expose, agent.Exposure{Name: "echo", Proto: proto, Local: local, Peers: []string{home.Name}})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	home.Connect = append(home.Connect, agent.Connect{Peer: office.Name, Service: "echo", Proto: proto, Listen: listen})
	return listen
}

// echoThrough sends payload through addr (TCP echo) and checks it back.
func echoThrough(t *testing.T, addr string, payload []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go c.Write(payload)
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo through the peer session: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatal("echoed bytes differ")
	}
}

// pacedEcho sends n random bytes through the TCP echo at addr at about
// 1 MiB/s (32 KiB every 30 ms) and returns them and a channel that gets
// what came back (all of it, or what had come when the echo stopped).
func pacedEcho(t *testing.T, addr string, n int) ([]byte, <-chan []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	payload := randomBytes(t, n)
	go func() {
		for off := 0; off < len(payload); off += 32 << 10 {
			if _, err := c.Write(payload[off:min(off+32<<10, len(payload))]); err != nil {
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(payload))
		k, _ := io.ReadFull(c, b)
		got <- b[:k]
	}()
	return payload, got
}

// peerPath returns the path the agent's session with peer uses ("" if none).
func peerPath(a *agent.Agent, peer string) string {
	for _, p := range a.Status().Peers {
		if p.Name == peer {
			return p.Path
		}
	}
	return ""
}

// TestPeerSessionBehindNATs: two agents behind simulated NATs reach each
// other's service through a peer session; the first bytes go through the
// relay at once, and the session moves to a punched direct path wherever
// the pair of NATs allows one (naive punching for cones, port prediction
// for sequential symmetric NATs), staying on the relay where no probe can
// meet (random symmetric on both sides).
func TestPeerSessionBehindNATs(t *testing.T) {
	cases := []struct {
		a, b   netsim.NATType
		direct bool
	}{
		{netsim.FullCone, netsim.PortRestricted, true},
		{netsim.PortRestricted, netsim.PortRestricted, true},
		{netsim.None, netsim.PortRestricted, true},
		{netsim.SymmetricSeq, netsim.PortRestricted, true},
		{netsim.PortRestricted, netsim.SymmetricSeq, true},
		{netsim.Symmetric, netsim.PortRestricted, true},
		{netsim.PortRestricted, netsim.Symmetric, true},
		{netsim.SymmetricSeq, netsim.SymmetricSeq, true},
		{netsim.Symmetric, netsim.Symmetric, false},
	}
	for _, c := range cases {
		t.Run(c.a.String()+"/"+c.b.String(), func(t *testing.T) {
			w := newPeerWorld(t)
			officeIP := "192.168.1.2"
			if c.a == netsim.None {
				officeIP = "198.51.100.200"
			}
			office := w.agentOn(w.site(c.a), officeIP, "office")
			home := w.agentOn(w.site(c.b), "192.168.1.2", "home")
			listen := peerPair(t, office, home, protocol.ProtoTCP)
			w.start()
			oa, olog, _ := testenv.StartAgent(t, office)
			ha, hlog, _ := testenv.StartAgent(t, home)
			start := time.Now()
			echoThrough(t, listen, randomBytes(t, 64<<10))
			t.Logf("first echo after %v (path %q)", time.Since(start).Round(time.Millisecond), peerPath(ha, "office"))
			if c.direct {
				wait := 10 * time.Second
				if c.a == netsim.Symmetric || c.b == netsim.Symmetric {
					// Birthday probing meets in about 98 % of rounds
					// (agent/birthday.go); the next round starts 5 s after
					// a failed one. Two rounds: CI once saw the 2 %.
					wait = 20 * time.Second
				}
				testenv.WaitFor(t, wait, "a direct path", func() bool {
					return peerPath(ha, "office") == "direct" && peerPath(oa, "home") == "direct"
				})
				t.Logf("direct after %v", time.Since(start).Round(time.Millisecond))
			} else {
				time.Sleep(6 * time.Second) // one whole punching round
				if p := peerPath(ha, "office"); p != "relay" {
					t.Fatalf("path %q, want relay", p)
				}
			}
			echoThrough(t, listen, randomBytes(t, 1<<20))
			if t.Failed() || testing.Verbose() {
				t.Logf("office log:\n%s\nhome log:\n%s", olog, hlog)
			}
			for _, l := range []string{olog.String(), hlog.String()} {
				want := "peer path: relay"
				if c.direct {
					want = "peer path: direct"
				}
				if !strings.Contains(l, want) {
					t.Fatalf("log lacks %q:\n%s", want, l)
				}
			}
		})
	}
}

// TestPeerPathFallsBackAndReturns: a transfer runs over a direct path;
// the path is cut (a firewall drops the two NATs' traffic to each other)
// and restored. The session moves to the relay within 3 s of the cut and
// back to the direct path after it is restored; no stream breaks and the
// bytes arrive intact.
func TestPeerPathFallsBackAndReturns(t *testing.T) {
	w := newPeerWorld(t)
	office := w.agentOn(w.site(netsim.PortRestricted), "192.168.1.2", "office")
	home := w.agentOn(w.site(netsim.PortRestricted), "192.168.1.2", "home")
	listen := peerPair(t, office, home, protocol.ProtoTCP)
	w.start()
	testenv.StartAgent(t, office)
	ha, hlog, _ := testenv.StartAgent(t, home)
	echoThrough(t, listen, randomBytes(t, 4<<10))
	testenv.WaitFor(t, 10*time.Second, "a direct path", func() bool { return peerPath(ha, "office") == "direct" })

	// A paced transfer of 8 MiB, about 1 MiB/s, echoed back.
	payload, got := pacedEcho(t, listen, 8<<20)

	time.Sleep(1500 * time.Millisecond)
	cut := func(src, dst netip.AddrPort) bool {
		a, b := src.Addr().String(), dst.Addr().String()
		return (a == "198.51.100.10" && b == "198.51.100.20") || (a == "198.51.100.20" && b == "198.51.100.10")
	}
	w.inet.SetDrop(cut)
	cutAt := time.Now()
	testenv.WaitFor(t, 5*time.Second, "the relay path after the cut", func() bool { return peerPath(ha, "office") == "relay" })
	toRelay := time.Since(cutAt)
	time.Sleep(3 * time.Second)
	w.inet.SetDrop(nil)
	restoredAt := time.Now()
	testenv.WaitFor(t, 20*time.Second, "the direct path again", func() bool { return peerPath(ha, "office") == "direct" })
	toDirect := time.Since(restoredAt)
	b := <-got
	if sha256.Sum256(b) != sha256.Sum256(payload) {
		t.Fatalf("transfer across the switches: %d of %d bytes, or content differs", len(b), len(payload))
	}
	t.Logf("cut -> relay in %v; restored -> direct in %v; 8 MiB echoed intact", toRelay.Round(time.Millisecond), toDirect.Round(time.Millisecond))
	if toRelay > 3*time.Second {
		t.Errorf("moved to the relay %v after the cut, want within 3 s", toRelay)
	}
	for _, want := range []string{"peer path: relay (direct path stopped answering)", "peer path: direct again"} {
		if !strings.Contains(hlog.String(), want) {
			t.Errorf("home's log lacks %q", want)
		}
	}
}

// TestPeerSessionOverTCPFallback: an agent whose UDP is blocked reaches
// the relay over TCP; its peer session's datagrams travel as forwarded
// records on that TCP link (and UDP on the other side), streams intact.
func TestPeerSessionOverTCPFallback(t *testing.T) {
	rcfg, ags := loopbackPeers(t, "office", "home")
	office, home := ags[0], ags[1]
	listen := peerPair(t, office, home, protocol.ProtoUDP)
	home.Transport = agent.TransportTCP
	r, as, _ := startPeers(t, rcfg, office, home)
	testenv.WaitFor(t, 10*time.Second, "home on tcp", func() bool { return as[1].Status().Transport == "tcp" })
	for i := 0; i < 3; i++ {
		if err := udpEcho(listen, randomBytes(t, 1200)); err != nil {
			t.Fatal(err)
		}
	}
	if p := peerPath(as[1], "office"); p == "" || p == "connecting" {
		t.Fatalf("no peer session: %q", p)
	}
	// The handshake came through the relay, both ways, over home's TCP
	// link (initiation out, response in, as forwarded records); the data
	// may already go direct, since home's UDP socket works on loopback.
	if n := r.Counters()["peer_forwarded"]; n < 2 {
		t.Fatalf("relay forwarded %d peer datagrams, want the handshake at least", n)
	}
}

// udpEcho sends one datagram through addr and checks the echo.
func udpEcho(addr string, payload []byte) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	b := make([]byte, len(payload)+1)
	for try := 0; try < 20; try++ {
		c.Write(payload)
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(b)
		if err == nil {
			if string(b[:n]) != string(payload) {
				return fmt.Errorf("udp echo differs")
			}
			return nil
		}
	}
	return fmt.Errorf("no udp echo through %s", addr)
}

// TestBirthdayTrials: random symmetric against port-restricted, 20 fresh
// pairs (new NATs seeded from the clock, so new random ports each time): at least 19 must find a
// direct path within two punching rounds (the bar for the lab).
func TestBirthdayTrials(t *testing.T) {
	if testing.Short() {
		t.Skip("20 pairs")
	}
	const trials = 20
	var mu sync.Mutex
	direct, times := 0, []time.Duration{}
	t.Run("pairs", func(t *testing.T) {
		for i := range trials {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				w := newPeerWorld(t)
				a, b := netsim.Symmetric, netsim.PortRestricted
				if i%2 == 1 {
					a, b = b, a
				}
				office := w.agentOn(w.site(a), "192.168.1.2", "office")
				home := w.agentOn(w.site(b), "192.168.1.2", "home")
				listen := peerPair(t, office, home, protocol.ProtoTCP)
				w.start()
				testenv.StartAgent(t, office)
				ha, _, _ := testenv.StartAgent(t, home)
				start := time.Now()
				echoThrough(t, listen, randomBytes(t, 4<<10))
				deadline := time.Now().Add(12 * time.Second)
				for time.Now().Before(deadline) && peerPath(ha, "office") != "direct" {
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				defer mu.Unlock()
				if peerPath(ha, "office") == "direct" {
					direct++
					times = append(times, time.Since(start))
				}
			})
		}
	})
	slices.Sort(times)
	med := time.Duration(0)
	if len(times) > 0 {
		med = times[len(times)/2]
	}
	t.Logf("birthday: %d of %d pairs direct, median time to direct %v", direct, trials, med.Round(time.Millisecond))
	if direct < trials-1 {
		t.Fatalf("only %d of %d pairs went direct", direct, trials)
	}
}
