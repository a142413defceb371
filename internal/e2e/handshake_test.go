package e2e

import (
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
	"github.com/pinhole/pinhole/relay"
)

// reconnectBound is how soon an agent must be connected when the
// handshake hardening works, as the issue asks: 2 s (one handshake retry
// is a second; the tests log the measured time).
const reconnectBound = 2 * time.Second

// handshakeSetup is a relay listing one agent config (not started yet).
func handshakeSetup(t *testing.T) (*relay.Relay, *testenv.LogBuffer, *relay.Config, *agent.Config) {
	t.Helper()
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey)
	acfg.Transport = agent.TransportUDP
	testenv.Allow(rcfg, acfg)
	r, rlog, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	return r, rlog, rcfg, acfg
}

// connectTime starts an agent with cfg and returns how long it took to be
// connected, failing after reconnectBound.
func connectTime(t *testing.T, cfg *agent.Config) (time.Duration, *agent.Agent, *testenv.LogBuffer, func()) {
	t.Helper()
	start := time.Now()
	a, alog, stop := testenv.StartAgent(t, cfg)
	testenv.WaitFor(t, reconnectBound, "agent connected", func() bool { return a.Status().Connected })
	return time.Since(start), a, alog, stop
}

// TestWrongClockNeverLocksOut: an agent whose clock once ran a year ahead
// connects again with a correct clock, and with a clock a year behind,
// over UDP and TCP; before, the relay refused every later timestamp until
// it restarted. The agent logs the offset it observed.
func TestWrongClockNeverLocksOut(t *testing.T) {
	for _, tr := range []agent.Transport{agent.TransportUDP, agent.TransportTCP} {
		t.Run(string(tr), func(t *testing.T) {
			_, _, _, acfg := handshakeSetup(t)
			acfg.Transport = tr
			for _, skew := range []time.Duration{365 * 24 * time.Hour, 0, -365 * 24 * time.Hour} {
				c := *acfg
				c.Clock = func() time.Time { return time.Now().Add(skew) }
				took, a, alog, stop := connectTime(t, &c)
				t.Logf("clock %+v: connected in %v", skew, took.Round(time.Millisecond))
				if got := time.Duration(a.Status().ClockOffsetMillis) * time.Millisecond; (got + skew).Abs() > 5*time.Second {
					t.Errorf("clock %v: status clock_offset %v, want about %v", skew, got, -skew)
				}
				// The warning is logged just after the link is up, which
				// Connected may report a moment before.
				if skew != 0 && !waitLogged(alog, "clock differs from the relay's", time.Second) {
					t.Errorf("clock %v: the agent did not log the offset", skew)
				}
				stop()
			}
		})
	}
}

// waitLogged reports whether log contains s within d.
func waitLogged(log fmt.Stringer, s string, d time.Duration) bool {
	for deadline := time.Now().Add(d); !strings.Contains(log.String(), s); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// initiations returns n message 1s of key to the relay, as an attacker
// would have captured them from the wire: genuine, timestamped in the past.
func initiations(t *testing.T, key secure.PrivateKey, relayPub secure.PublicKey, n int) [][]byte {
	var out [][]byte
	for i := range n {
		_, m1, err := secure.Initiate(key, relayPub, uint32(1000+i), secure.Timestamp(time.Now().Add(-time.Duration(n-i)*time.Second)), secure.Cookie{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m1)
	}
	return out
}

func sendAll(t *testing.T, to string, msgs [][]byte) {
	c, err := net.Dial("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range msgs {
		c.Write(m)
	}
}

// TestReplaysCannotDelayRealAgent: captured initiations replayed at a
// freshly started relay fill its unconfirmed-session slots for the key;
// the real agent still connects at once (a cookie round trip lets its
// fresh handshake evict them), and replays sent while it is connected
// neither displace nor disturb its session. Before, it waited 15 s.
func TestReplaysCannotDelayRealAgent(t *testing.T) {
	r, _, rcfg, acfg := handshakeSetup(t)
	captured := initiations(t, acfg.PrivateKey, rcfg.PrivateKey.Public(), 5)
	sendAll(t, r.Addr().String(), captured)
	time.Sleep(200 * time.Millisecond) // let the worker take them
	took, a, _, _ := connectTime(t, acfg)
	t.Logf("connected %v after 5 replayed initiations", took.Round(time.Millisecond))

	since := a.Status().Since
	sendAll(t, r.Addr().String(), captured)
	sendAll(t, r.Addr().String(), initiations(t, acfg.PrivateKey, rcfg.PrivateKey.Public(), 5))
	time.Sleep(time.Second)
	st := a.Status()
	if !st.Connected || !st.Since.Equal(*since) || r.Counters()["replaced"] != 0 {
		t.Fatalf("replays disturbed the live session: connected %v, since %v -> %v, replaced %d",
			st.Connected, since, st.Since, r.Counters()["replaced"])
	}
}

// flood sends msgs round robin from several sockets of this host (the
// agent's IP, other ports) until stop is closed, about rate per second.
func flood(t *testing.T, to string, msgs [][]byte, rate int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for s := range 4 {
		c, err := net.Dial("udp", to)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			tick := time.NewTicker(time.Second / time.Duration(rate/4))
			defer tick.Stop()
			for i := s; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
					c.Write(msgs[i%len(msgs)])
				}
			}
		})
	}
	return &wg
}

// TestBlindJunkCannotLockOut: forged one-byte and full-size 0xA1
// datagrams from the agent's IP (other ports), far over the per-address
// handshake budget, fail mac1 before they cost any budget: the agent
// connects at once. Before, they kept it out for as long as they lasted.
func TestBlindJunkCannotLockOut(t *testing.T) {
	r, rlog, _, acfg := handshakeSetup(t)
	junk := [][]byte{{byte(protocol.TypeHandshakeInit)}}
	for range 8 {
		b := make([]byte, secure.InitLen)
		rand.Read(b)
		b[0], b[1] = byte(protocol.TypeHandshakeInit), protocol.Version
		junk = append(junk, b)
	}
	stop := make(chan struct{})
	wg := flood(t, r.Addr().String(), junk, 400, stop)
	defer func() { close(stop); wg.Wait() }()
	// Junk over TCP too, from the same IP.
	for range 20 {
		if c, err := net.Dial("tcp", r.Addr().String()); err == nil {
			link.WriteRecord(c, junk[1])
			c.Close()
		}
	}
	time.Sleep(500 * time.Millisecond) // the per-IP budget (burst 50) is long gone
	took, _, _, _ := connectTime(t, acfg)
	t.Logf("connected in %v during a junk flood (%d junk handshakes counted)", took.Round(time.Millisecond), r.Counters()["handshake_junk"])
	if r.Counters()["handshake_junk"] < 100 {
		t.Fatalf("handshake_junk = %d, want the flood counted", r.Counters()["handshake_junk"])
	}
	if n := strings.Count(rlog.String(), "handshake dropped: bad mac1"); n != 1 {
		t.Errorf("relay logged the junk %d times, want once per source and reason", n)
	}
}

// TestValidMACFloodCostsOneRoundTrip: someone who knows the relay's public
// key (every agent does) floods well-formed initiations of an unlisted key
// from the agent's IP, other ports. The per-IP budget runs out; the agent
// is answered with a cookie, proves its address and port with it, and gets
// in at once.
func TestValidMACFloodCostsOneRoundTrip(t *testing.T) {
	r, _, rcfg, acfg := handshakeSetup(t)
	stop := make(chan struct{})
	wg := flood(t, r.Addr().String(), initiations(t, testenv.Key(t), rcfg.PrivateKey.Public(), 16), 200, stop)
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(500 * time.Millisecond)
	took, _, _, _ := connectTime(t, acfg)
	t.Logf("connected in %v during a flood of valid-mac1 initiations (cookies sent %d, dropped %d)",
		took.Round(time.Millisecond), r.Counters()["cookies_sent"], r.Counters()["handshake_dropped"])
	if r.Counters()["cookies_sent"] == 0 {
		t.Fatal("no cookie was sent: the flood did not exhaust the per-IP budget, so this test proves nothing")
	}
}

// TestAgentStatusSaysWhatHappened: the agent's last error tells a relay
// that refused its key from one that never answered, instead of guessing.
func TestAgentStatusSaysWhatHappened(t *testing.T) {
	r, _, rcfg, _ := handshakeSetup(t)
	unlisted := testenv.AgentConfig(t, r.Addr().String(), rcfg.PrivateKey)
	unlisted.Transport = agent.TransportUDP
	a, _, _ := testenv.StartAgent(t, unlisted)
	testenv.WaitFor(t, 10*time.Second, "refusal in status", func() bool {
		return strings.Contains(a.Status().LastError, "is not listed in the relay's config")
	})

	// Nothing listens: UDP gets no answer within UDPWait, then TCP is
	// refused by the kernel; the status says so rather than blame keys.
	silent := testenv.AgentConfig(t, "127.0.0.1:"+strconv.Itoa(int(testenv.FreePort(t))), rcfg.PrivateKey)
	b, _, _ := testenv.StartAgent(t, silent)
	testenv.WaitFor(t, 15*time.Second, "no-answer in status", func() bool {
		return strings.Contains(b.Status().LastError, "connection refused")
	})
	if n := a.Status().Counters["handshakes_refused"]; n == 0 {
		t.Errorf("refused agent: handshakes_refused = 0 in status")
	}
	t.Logf("refused: %q", a.Status().LastError)
	t.Logf("silent: %q", b.Status().LastError)

	// A relay whose UDP port swallows everything, the agent on UDP only:
	// its status says nothing came back, and counts it, without claiming
	// this agent's key is not listed.
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	go func() {
		for buf := make([]byte, 2048); ; {
			if _, _, err := hole.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	udpOnly := testenv.AgentConfig(t, hole.LocalAddr().String(), rcfg.PrivateKey)
	udpOnly.Transport = agent.TransportUDP
	u, _, _ := testenv.StartAgent(t, udpOnly)
	testenv.WaitFor(t, 40*time.Second, "no-answer over udp in status", func() bool { return u.Status().LastError != "" })
	st := u.Status()
	t.Logf("silent over udp: %q", st.LastError)
	if !strings.Contains(st.LastError, "no handshake answer") || strings.Contains(st.LastError, "is not listed") {
		t.Errorf("silent relay over udp: status says %q, want no handshake answer and no claim about this agent's key", st.LastError)
	}
	if st.Counters["handshakes_unanswered"] == 0 || st.Counters["handshakes_refused"] != 0 {
		t.Errorf("silent relay over udp: handshakes_unanswered %d, handshakes_refused %d; want some and none",
			st.Counters["handshakes_unanswered"], st.Counters["handshakes_refused"])
	}

	// A relay port that accepts TCP and closes it before answering (a
	// relay restarting, or shedding load): neutral, no key blamed.
	closer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	go func() {
		for {
			c, err := closer.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			c.Read(make([]byte, 64)) // the start of the initiation, then nothing
			c.Close()
		}
	}()
	tcpOnly := testenv.AgentConfig(t, closer.Addr().String(), rcfg.PrivateKey)
	tcpOnly.Transport = agent.TransportTCP
	c, _, _ := testenv.StartAgent(t, tcpOnly)
	testenv.WaitFor(t, 15*time.Second, "closed-during-handshake in status", func() bool { return c.Status().LastError != "" })
	st = c.Status()
	t.Logf("closed over tcp: %q", st.LastError)
	if !strings.Contains(st.LastError, "closed the connection during the handshake") || strings.Contains(st.LastError, "is listed on the relay") ||
		strings.Contains(st.LastError, "is not listed") {
		t.Errorf("relay closed over tcp: status says %q, want the close named and no claim about this agent's key", st.LastError)
	}
}
