package e2e

import (
	"crypto/sha256"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
)

// natProxy stands between agent and relay like a NAT: the agent talks to
// its front socket, the relay sees the back socket's address. It can
// rebind (a new back socket: the NAT forgot the mapping) and withhold the
// next agent datagram for an attacker to replay from elsewhere.
type natProxy struct {
	t     *testing.T
	front *net.UDPConn
	relay netip.AddrPort

	mu    sync.Mutex
	back  *net.UDPConn
	agent netip.AddrPort
	hold  chan []byte // when set, the next Data datagram goes here instead
}

func newNATProxy(t *testing.T, relay netip.AddrPort) *natProxy {
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &natProxy{t: t, front: front, relay: relay}
	p.rebind()
	go p.up()
	t.Cleanup(func() {
		front.Close()
		p.mu.Lock()
		p.back.Close()
		p.mu.Unlock()
	})
	return p
}

func (p *natProxy) addr() string { return p.front.LocalAddr().String() }

// backAddr is the address the relay sees the agent at.
func (p *natProxy) backAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.back.LocalAddr().String()
}

// rebind replaces the back socket, as a NAT does when its mapping expired.
func (p *natProxy) rebind() {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	old := p.back
	p.back = c
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go p.down(c)
}

// up forwards agent -> relay through the current back socket.
func (p *natProxy) up() {
	buf := make([]byte, 2048)
	for {
		n, from, err := p.front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.agent = from
		back, hold := p.back, p.hold
		if hold != nil && buf[0] == byte(protocol.TypeData) {
			p.hold = nil
		} else {
			hold = nil
		}
		p.mu.Unlock()
		if hold != nil {
			hold <- append([]byte(nil), buf[:n]...)
			continue
		}
		back.WriteToUDPAddrPort(buf[:n], p.relay)
	}
}

// down forwards relay -> agent for one back socket until it is closed.
func (p *natProxy) down(back *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		n, _, err := back.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		to := p.agent
		p.mu.Unlock()
		p.front.WriteToUDPAddrPort(buf[:n], to)
	}
}

// withhold arms the proxy to keep the next Data datagram the agent sends
// from the relay; the returned function waits for it. Arm before causing
// the traffic: a fast round trip can otherwise finish before the trap is
// set, leaving nothing to catch until the next heartbeat.
func (p *natProxy) withhold() func() []byte {
	c := make(chan []byte, 1)
	p.mu.Lock()
	p.hold = c
	p.mu.Unlock()
	return func() []byte {
		select {
		case b := <-c:
			return b
		case <-time.After(10 * time.Second):
			p.t.Fatal("the agent sent nothing to withhold")
			return nil
		}
	}
}

// TestWithheldPacketCannotRedirect: a genuine agent packet withheld on the
// path and replayed from another address reaches KCP (it is genuine) but
// does not move the relay's traffic there: that address only gets a path
// challenge it cannot answer. Before, the relay followed it at once and
// sent the agent's traffic to the attacker until the next heartbeat.
func TestWithheldPacketCannotRedirect(t *testing.T) {
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "echo", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	acfg.Heartbeat = 10 * time.Second // no heartbeat rescues the path during the test
	testenv.Allow(rcfg, acfg, port)
	r, _, _ := testenv.StartRelay(t, rcfg)
	proxy := newNATProxy(t, r.Addr())
	acfg.Relays[0].Address = proxy.addr()
	testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "echo") })
	view := func() string {
		for _, a := range r.Status().Agents {
			return a.Addr
		}
		return ""
	}
	honest := proxy.backAddr()

	attacker, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	var stolen atomic.Int64 // KCP datagrams the relay sent to the attacker
	var challenges atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := attacker.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n > 1 && buf[0] == byte(protocol.TypeData) && buf[1] == byte(protocol.DataPathChallenge) {
				challenges.Add(1)
			} else {
				stolen.Add(1)
			}
		}
	}()

	// A client connection makes the agent send; withhold one packet of it
	// (KCP retransmits its content under a new counter, so the held
	// datagram stays unseen, and replayable, at the relay).
	caught := proxy.withhold()
	done := make(chan struct{})
	go func() { roundTripErr(port, randomBytes(t, 4<<10)); close(done) }()
	held := caught()
	<-done
	// Replay it from elsewhere while the link is idle: nothing from the
	// agent would pull the relay back before the next client arrives.
	time.Sleep(300 * time.Millisecond)
	attacker.WriteToUDPAddrPort(held, r.Addr())
	time.Sleep(100 * time.Millisecond)

	start := time.Now()
	payload := randomBytes(t, 256<<10)
	if got := roundTrip(t, port, payload); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatal("transfer after the replay broken")
	}
	t.Logf("transfer after the replayed packet took %v; relay sent %d datagrams to the attacker (%d path challenges)",
		time.Since(start).Round(time.Millisecond), stolen.Load()+challenges.Load(), challenges.Load())
	if stolen.Load() != 0 {
		t.Fatalf("the relay sent %d tunnel datagrams to the attacker's address", stolen.Load())
	}
	if challenges.Load() == 0 {
		t.Fatal("the replayed packet drew no path challenge: the test did not exercise validation")
	}
	if got := view(); got != honest {
		t.Fatalf("relay sees the agent at %s, want %s", got, honest)
	}
}

// roundTripErr is roundTrip for goroutines that must not fail the test.
func roundTripErr(port uint16, payload []byte) {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(payload)
	c.Read(make([]byte, len(payload)))
}

// TestNATRebindingFollowedInOneRoundTrip: when the agent's NAT mapping
// changes, the relay validates the new address and moves there at once,
// and its state file (where a restarted relay invites its agents) follows
// within a second.
func TestNATRebindingFollowedInOneRoundTrip(t *testing.T) {
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	rcfg.StateFile = filepath.Join(t.TempDir(), "relay.state")
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "echo", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	// The relay can only learn the new mapping from the agent's next
	// packet; a 1 s heartbeat bounds the wait for one on an idle link.
	acfg.Heartbeat = time.Second
	testenv.Allow(rcfg, acfg, port)
	r, _, _ := testenv.StartRelay(t, rcfg)
	proxy := newNATProxy(t, r.Addr())
	acfg.Relays[0].Address = proxy.addr()
	testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "echo") })

	proxy.rebind()
	start := time.Now()
	payload := randomBytes(t, 256<<10)
	if got := roundTrip(t, port, payload); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatal("transfer across the rebinding broken")
	}
	testenv.WaitFor(t, 2*time.Second, "relay follows the new mapping", func() bool {
		for _, a := range r.Status().Agents {
			return a.Addr == proxy.backAddr()
		}
		return false
	})
	t.Logf("transfer across a NAT rebinding took %v", time.Since(start).Round(time.Millisecond))
	moved := time.Now()
	testenv.WaitFor(t, time.Second, "state file follows the new mapping", func() bool {
		b, _ := os.ReadFile(rcfg.StateFile)
		return strings.Contains(string(b), proxy.backAddr()+" ")
	})
	t.Logf("state file followed %v after the relay did", time.Since(moved).Round(time.Millisecond))
}
