package e2e

import (
	"fmt"
	"github.com/pinhole/pinhole/internal/testenv"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// TestRefusals checks each way an agent is turned away, and that the
// operator's log says why.
func TestRefusals(t *testing.T) {
	t.Run("wrong relay key", func(t *testing.T) {
		rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
		acfg := testenv.AgentConfig(t, "", testenv.Key(t), agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: testenv.FreePort(t)})
		testenv.Allow(rcfg, acfg, acfg.Expose[0].RemotePort)
		r, _, _ := testenv.StartRelay(t, rcfg)
		acfg.Relays[0].Address = r.Addr().String()
		a, alog, _ := testenv.StartAgent(t, acfg)
		testenv.WaitFor(t, 10*time.Second, "agent to report the relay unreachable over tcp", func() bool {
			return strings.Contains(alog.String(), "over tcp")
		})
		if a.Status().Connected || len(r.Status().Agents) != 0 {
			t.Fatal("agent connected to a relay whose key it did not pin")
		}
		if !strings.Contains(alog.String(), "the relay public_key in the agent config is not this relay's") {
			t.Errorf("agent log does not name the relay key as a possible cause:\n%s", alog)
		}
	})
	t.Run("unknown agent key", func(t *testing.T) {
		rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
		r, rlog, _ := testenv.StartRelay(t, rcfg)
		acfg := testenv.AgentConfig(t, r.Addr().String(), rcfg.PrivateKey)
		testenv.StartAgent(t, acfg)
		want := "agent key not listed in relay config"
		testenv.WaitFor(t, 10*time.Second, "relay log line "+want, func() bool { return strings.Contains(rlog.String(), want) })
		if !strings.Contains(rlog.String(), acfg.PrivateKey.Public().String()) {
			t.Errorf("relay log does not name the refused key %s", acfg.PrivateKey.Public())
		}
	})
	t.Run("port outside allow-list", func(t *testing.T) {
		allowed, forbidden := testenv.FreePort(t), testenv.FreePort(t)
		rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
		acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey,
			agent.Exposure{Name: "ok", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: allowed},
			agent.Exposure{Name: "sneaky", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: forbidden})
		testenv.Allow(rcfg, acfg, allowed)
		r, rlog, _ := testenv.StartRelay(t, rcfg)
		acfg.Relays[0].Address = r.Addr().String()
		_, alog, _ := testenv.StartAgent(t, acfg)
		testenv.WaitFor(t, 10*time.Second, "allowed exposure open", func() bool { return testenv.Exposed(r, "ok") })
		testenv.WaitFor(t, 5*time.Second, "agent log of the refusal", func() bool {
			return strings.Contains(alog.String(), "exposure refused by relay") && strings.Contains(alog.String(), "not in this agent's allow_ports")
		})
		if !strings.Contains(rlog.String(), "exposure refused: port not allowed") {
			t.Errorf("relay log does not record the refusal")
		}
		if testenv.Exposed(r, "sneaky") {
			t.Fatal("relay opened a port outside the allow-list")
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(forbidden)), time.Second); err == nil {
			c.Close()
			t.Fatalf("port %d outside the allow-list accepts connections", forbidden)
		}
	})
}

// TestNewerSessionWins: a second agent process with the same key takes
// over; the first is told why and its session closed.
func TestNewerSessionWins(t *testing.T) {
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.ReconnectMax = time.Hour // keep the loser from bouncing straight back
	testenv.Allow(rcfg, acfg, port)
	r, _, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	first, firstLog, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "first agent registered", func() bool { return testenv.Exposed(r, "web") && first.Status().Connected })
	second, _, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "second agent connected", func() bool { return second.Status().Connected })
	testenv.WaitFor(t, 10*time.Second, "first agent told it was replaced", func() bool {
		return strings.Contains(firstLog.String(), "a newer session with the same key connected")
	})
	testenv.WaitFor(t, 10*time.Second, "exposure served by the newer session", func() bool { return testenv.Exposed(r, "web") })
	if got := r.Counters()["replaced"]; got < 1 {
		t.Fatalf("replaced counter = %d, want >= 1", got)
	}
	if n := len(r.Status().Agents); n != 1 {
		t.Fatalf("relay lists %d live sessions for one key, want 1", n)
	}
	payload := randomBytes(t, 64<<10)
	if got := roundTrip(t, port, payload); string(got) != string(payload) {
		t.Fatal("exposure broken after the takeover")
	}
}

// TestUnknownVersionRefused: a handshake in a protocol version the relay
// does not speak gets a Refuse naming the version it does speak, over UDP
// and over TCP, and the relay logs why.
func TestUnknownVersionRefused(t *testing.T) {
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	r, rlog, _ := testenv.StartRelay(t, rcfg)
	ak := testenv.Key(t)
	_, m1, err := secure.Initiate(ak, rcfg.PrivateKey.Public(), 42, secure.Timestamp(time.Now()), secure.Cookie{})
	if err != nil {
		t.Fatal(err)
	}
	m1[1] = protocol.Version + 1 // a future agent

	check := func(via string, b []byte) {
		ref, err := protocol.ParseRefuse(b)
		if err != nil || ref.Code != protocol.RefuseVersion || ref.Version != protocol.Version || ref.Index != 42 {
			t.Fatalf("%s: got %x (%+v, %v), want Refuse{version, speaks %d, index 42}", via, b, ref, err, protocol.Version)
		}
	}
	u, err := net.Dial("udp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetReadDeadline(time.Now().Add(5 * time.Second))
	u.Write(m1)
	buf := make([]byte, 64)
	n, err := u.Read(buf)
	if err != nil {
		t.Fatalf("udp: no refusal: %v", err)
	}
	check("udp", buf[:n])

	c, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := link.WriteRecord(c, m1); err != nil {
		t.Fatal(err)
	}
	rec, err := link.ReadRecord(c, make([]byte, 64))
	if err != nil {
		t.Fatalf("tcp: no refusal: %v", err)
	}
	check("tcp", rec)
	testenv.WaitFor(t, 2*time.Second, "relay log line", func() bool {
		return strings.Contains(rlog.String(), "handshake refused: unsupported protocol version") && strings.Contains(rlog.String(), fmt.Sprintf("version=%d", protocol.Version+1))
	})
}
