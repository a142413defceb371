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
)

// TestFailover: two relays listed, the first dies silently (no goodbye);
// the exposure must come up on the second within about 10 s of the agent
// noticing, whatever the heartbeat interval.
func TestFailover(t *testing.T) {
	cases := []struct {
		name      string
		heartbeat time.Duration
		// poke makes the agent send something right after the kill (a
		// reload re-sends Register), standing in for the next heartbeat
		// or any tunneled traffic; without it the agent notices at its
		// next heartbeat.
		poke bool
	}{
		{"heartbeat-15s", 15 * time.Second, true},
		{"heartbeat-60s", 60 * time.Second, true},
		{"heartbeat-3s-unpoked", 3 * time.Second, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			ks := &killSwitch{}
			rcfg1 := testenv.RelayConfig(t, "127.0.0.1:0")
			rcfg1.ListenPacket = wrapUDP(func(pc net.PacketConn) net.PacketConn { ks.PacketConn = pc; return ks })
			rcfg2 := testenv.RelayConfig(t, "127.0.0.1:0")
			rcfg2.Bind = "127.0.0.2" // both relays open the same port number
			acfg := testenv.AgentConfig(t, "", rcfg1.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
			acfg.Transport = agent.TransportUDP
			acfg.Heartbeat, acfg.ReconnectMax = c.heartbeat, 30*time.Second
			testenv.Allow(rcfg1, acfg, port)
			testenv.Allow(rcfg2, acfg, port)
			r1, _, _ := testenv.StartRelay(t, rcfg1)
			r2, _, _ := testenv.StartRelay(t, rcfg2)
			acfg.Relays = []agent.Relay{{Address: r1.Addr().String(), PublicKey: rcfg1.PrivateKey.Public()},
				{Address: r2.Addr().String(), PublicKey: rcfg2.PrivateKey.Public()}}
			a, alog, _ := testenv.StartAgent(t, acfg)
			if _, ok := waitEchoes("127.0.0.1", port, 10*time.Second); !ok {
				t.Fatal("exposure not up on the first relay")
			}
			time.Sleep(1500 * time.Millisecond) // past the first heartbeat
			ks.kill()
			if c.poke {
				a.Reload(acfg)
			}
			killed := time.Now()
			d, ok := waitEchoes("127.0.0.2", port, 25*time.Second)
			if !ok {
				t.Fatalf("exposure not up on the second relay %v after the first went silent; agent log:\n%s", d, tail(alog.String(), 30))
			}
			// The bound: 10 s from the first answer the agent
			// missed (the request it was waiting on went out then). Idle,
			// that request is the next heartbeat, so up to one interval
			// after the relay died (docs/architecture.md).
			missed, found := firstMissed(alog.String())
			if !found {
				t.Fatalf("agent never logged a missed answer; log:\n%s", tail(alog.String(), 30))
			}
			fromMiss := killed.Add(d).Sub(missed)
			t.Logf("heartbeat %v: exposure up on the second relay %v after the first went silent, %v after the first missed answer",
				c.heartbeat, d.Round(10*time.Millisecond), fromMiss.Round(10*time.Millisecond))
			if fromMiss > 10*time.Second {
				t.Errorf("failover took %v from the first missed answer, want within 10 s; agent log:\n%s", fromMiss, tail(alog.String(), 30))
			}
			if limit := 10*time.Second + c.heartbeat; !c.poke && d > limit {
				t.Errorf("unpoked failover took %v from the relay's death, want within one heartbeat and 10 s (%v)", d, limit)
			}
			if st := a.Status(); st.Relay != r2.Addr().String() {
				t.Errorf("agent status names relay %q, want %q", st.Relay, r2.Addr())
			}
			if c := a.Status().Counters; c["relay_failovers"] != 1 || c["relay_links_lost"] != 1 {
				t.Errorf("agent status counts %d failovers, %d links lost; want 1 and 1", c["relay_failovers"], c["relay_links_lost"])
			}
		})
	}
}

// firstMissed finds the agent's first "no answer from the relay" line and
// returns when the request it waited on went out: the line's time minus
// its since= (how long the agent had waited).
func firstMissed(log string) (time.Time, bool) {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="no answer from the relay, probing"`) {
			continue
		}
		var at time.Time
		var since time.Duration
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "time="); ok {
				at, _ = time.Parse(time.RFC3339Nano, v)
			}
			if v, ok := strings.CutPrefix(f, "since="); ok {
				since, _ = time.ParseDuration(v)
			}
		}
		if !at.IsZero() && since > 0 {
			return at.Add(-since), true
		}
	}
	return time.Time{}, false
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestFailoverAndBack: after failing over, the agent probes the first
// relay and moves back to it once it answers again and no tunneled
// connection would be cut.
func TestFailoverAndBack(t *testing.T) {
	port := testenv.FreePort(t)
	ks := &killSwitch{}
	rcfg1 := testenv.RelayConfig(t, "127.0.0.1:0")
	rcfg1.ListenPacket = wrapUDP(func(pc net.PacketConn) net.PacketConn { ks.PacketConn = pc; return ks })
	rcfg2 := testenv.RelayConfig(t, "127.0.0.1:0")
	rcfg2.Bind = "127.0.0.2"
	acfg := testenv.AgentConfig(t, "", rcfg1.PrivateKey, agent.Exposure{Name: "web", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	acfg.UDPProbe = time.Second
	testenv.Allow(rcfg1, acfg, port)
	testenv.Allow(rcfg2, acfg, port)
	r1, _, _ := testenv.StartRelay(t, rcfg1)
	r2, _, _ := testenv.StartRelay(t, rcfg2)
	acfg.Relays = []agent.Relay{{Address: r1.Addr().String(), PublicKey: rcfg1.PrivateKey.Public()},
		{Address: r2.Addr().String(), PublicKey: rcfg2.PrivateKey.Public()}}
	a, alog, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposure on the first relay", func() bool { return echoes("127.0.0.1", port) })
	ks.kill()
	testenv.WaitFor(t, 20*time.Second, "exposure on the second relay", func() bool { return echoes("127.0.0.2", port) })

	// A connection through the second relay holds the agent there.
	c, err := net.Dial("tcp", "127.0.0.2:"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatal(err)
	}
	ks.dead.Store(false) // the first relay answers again
	time.Sleep(3 * time.Second)
	if st := a.Status(); st.Relay != r2.Addr().String() {
		t.Fatalf("agent moved to %s while a connection was open", st.Relay)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("connection through the second relay cut: %v", err)
	}
	c.Close()
	testenv.WaitFor(t, 15*time.Second, "agent back on the first relay", func() bool {
		return a.Status().Relay == r1.Addr().String() && echoes("127.0.0.1", port)
	})
	if !strings.Contains(alog.String(), "the first relay answers again") {
		t.Error("agent log does not say why it moved back")
	}
}
