package e2e

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/relay"
)

// loopbackPeers is a relay and agent configs on loopback for peer tests.
func loopbackPeers(t *testing.T, names ...string) (*relay.Config, []*agent.Config) {
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	var out []*agent.Config
	for _, n := range names {
		a := testenv.AgentConfig(t, "", rcfg.PrivateKey)
		a.Name = n
		a.Transport = agent.TransportUDP
		testenv.Allow(rcfg, a)
		out = append(out, a)
	}
	return rcfg, out
}

func startPeers(t *testing.T, rcfg *relay.Config, agents ...*agent.Config) (*relay.Relay, []*agent.Agent, []*testenv.LogBuffer) {
	r, _, _ := testenv.StartRelay(t, rcfg)
	var as []*agent.Agent
	var logs []*testenv.LogBuffer
	for _, a := range agents {
		a.Relays[0].Address = r.Addr().String()
		ag, l, _ := testenv.StartAgent(t, a)
		as = append(as, ag)
		logs = append(logs, l)
	}
	return r, as, logs
}

// refusedEcho checks that a connection through addr carries nothing back.
func refusedEcho(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return // refused outright: fine
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	c.Write([]byte("hello"))
	b := make([]byte, 5)
	if n, err := c.Read(b); err == nil {
		t.Fatalf("got %q back from a service that must not be reachable", b[:n])
	}
}

// TestPeerNotOnListIsRefused: an agent the relay knows but that is on no
// exposure's peers list gets no session and reaches nothing.
func TestPeerNotOnListIsRefused(t *testing.T) {
	t.Parallel()
	rcfg, ags := loopbackPeers(t, "office", "home", "stranger")
	office, home, stranger := ags[0], ags[1], ags[2]
	listen := peerPair(t, office, home, protocol.ProtoTCP)
	sneak := "127.0.0.1:" + strconv.Itoa(int(testenv.FreePort(t)))
	stranger.Connect = []agent.Connect{{Peer: "office", Service: "echo", Proto: protocol.ProtoTCP, Listen: sneak}}
	_, as, logs := startPeers(t, rcfg, office, home, stranger)
	echoThrough(t, listen, randomBytes(t, 4<<10)) // the allowed peer works
	refusedEcho(t, sneak)
	if p := peerPath(as[2], "office"); p != "connecting" {
		t.Fatalf("stranger's path to office %q, want connecting (no session)", p)
	}
	if !strings.Contains(logs[0].String(), "not on any exposure's peers list") || as[0].Status().Counters["peer_refused"] == 0 {
		t.Fatalf("office did not log and count the refusal:\n%s", logs[0])
	}
}

// TestPeerServiceNotOffered: an allowed peer asking for an exposure that
// does not list it (or a public-only one) gets its stream refused.
func TestPeerServiceNotOffered(t *testing.T) {
	rcfg, ags := loopbackPeers(t, "office", "home")
	office, home := ags[0], ags[1]
	listen := peerPair(t, office, home, protocol.ProtoTCP)
	office.Expose = append(office.Expose, agent.Exposure{Name: "admin", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), Peers: []string{"someone-else"}})
	other := "127.0.0.1:" + strconv.Itoa(int(testenv.FreePort(t)))
	home.Connect = append(home.Connect, agent.Connect{Peer: "office", Service: "admin", Proto: protocol.ProtoTCP, Listen: other})
	_, as, logs := startPeers(t, rcfg, office, home)
	echoThrough(t, listen, randomBytes(t, 4<<10))
	refusedEcho(t, other)
	if !strings.Contains(logs[0].String(), "peer asked for a service it may not use") || as[0].Status().Counters["peer_refused"] == 0 {
		t.Fatalf("office did not log and count the refused stream:\n%s", logs[0])
	}
}

// TestPeerPinnedKeyMismatch: a connect entry that pins a key other than
// the one the relay vouches for refuses the introduction (a compromised
// relay cannot put itself in the middle).
func TestPeerPinnedKeyMismatch(t *testing.T) {
	t.Parallel()
	rcfg, ags := loopbackPeers(t, "office", "home")
	office, home := ags[0], ags[1]
	listen := peerPair(t, office, home, protocol.ProtoTCP)
	home.Connect[0].PublicKey = testenv.Key(t).Public()
	_, as, logs := startPeers(t, rcfg, office, home)
	refusedEcho(t, listen)
	if !strings.Contains(logs[1].String(), "differs from the pinned public_key") || as[1].Status().Counters["peer_wrong_key"] == 0 {
		t.Fatalf("home did not log and count the wrong key:\n%s", logs[1])
	}
}

// TestPeerPinnedKeyMatch: with the right key pinned the session works.
func TestPeerPinnedKeyMatch(t *testing.T) {
	rcfg, ags := loopbackPeers(t, "office", "home")
	office, home := ags[0], ags[1]
	listen := peerPair(t, office, home, protocol.ProtoTCP)
	home.Connect[0].PublicKey = office.PrivateKey.Public()
	startPeers(t, rcfg, office, home)
	echoThrough(t, listen, randomBytes(t, 64<<10))
}
