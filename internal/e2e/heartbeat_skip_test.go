package e2e

import (
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/relay"
)

// countingConn counts the datagrams an agent's socket sends to to.
type countingConn struct {
	net.PacketConn
	to   string
	sent atomic.Uint64
}

func (c *countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if addr.String() == c.to {
		c.sent.Add(1)
	}
	return c.PacketConn.WriteTo(p, addr)
}

// fastHeartbeat configures a relay that drops agents silent for 2 s and an
// agent over UDP with a 1 s heartbeat and an echo exposed on port.
func fastHeartbeat(t *testing.T) (*relay.Config, *agent.Config, uint16) {
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	rcfg.AgentTimeout = 2 * time.Second
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey,
		agent.Exposure{Name: "echo", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	acfg.Heartbeat = time.Second
	testenv.Allow(rcfg, acfg, port)
	return rcfg, acfg, port
}

// TestHeartbeatSkipsWhileBusy counts the datagrams the agent's socket
// sends to its relay (1 s heartbeat). Idle, they are the keepalives and
// nothing else: one datagram per beat, answered beside KCP (before
// keepalive datagrams, a control Ping and KCP's ACK of the Pong: two per
// beat; KCP and smux send nothing of their own). Busy (an echo through
// the exposure every 100 ms for 8 s), the traffic refreshes the NAT
// mapping and the Pings stop; the relay, whose silence limit is 5 s
// (3 x 1 s + 2 s), keeps the agent because it hears the link's packets,
// not only control messages. Idle again, the Pings resume.
func TestHeartbeatSkipsWhileBusy(t *testing.T) {
	rcfg, acfg, port := fastHeartbeat(t)
	r, rlog, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	cc := &countingConn{to: r.Addr().String()}
	var opened atomic.Bool
	acfg.ListenPacket = func(network, address string) (net.PacketConn, error) {
		pc, err := net.ListenPacket(network, address)
		if err != nil || opened.Swap(true) {
			return pc, err // NAT discovery's probe sockets are not counted
		}
		cc.PacketConn = pc
		return cc, nil
	}
	a, alog, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "echo") })
	since := *a.Status().Since
	time.Sleep(2 * time.Second) // NAT discovery and registration settle
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nrelay log:\n%s\nagent log:\n%s", append(args, rlog.String(), alog.String())...)
	}
	pongs := func() uint64 { return a.Status().Counters["pongs"] }

	// Idle.
	d0, p0 := cc.sent.Load(), pongs()
	time.Sleep(5 * time.Second)
	idleSent, idlePongs := cc.sent.Load()-d0, pongs()-p0
	t.Logf("idle 5 s: %d datagrams to the relay, %d Pongs", idleSent, idlePongs)
	if idlePongs < 4 {
		fail("idle: %d Pongs in 5 s with a 1 s heartbeat, want at least 4", idlePongs)
	}
	if idleSent > idlePongs+1 {
		fail("idle: %d datagrams for %d heartbeats, want one each (+1): something else talks on an idle link", idleSent, idlePongs)
	}

	// Busy: one connection echoing 100 bytes every 100 ms.
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, buf := make([]byte, 100), make([]byte, 100)
	echo := func() {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(msg); err != nil {
			fail("write through the tunnel: %v", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			fail("read through the tunnel: %v", err)
		}
	}
	echo()
	time.Sleep(time.Second) // the beat due now sees the traffic
	d0, p0 = cc.sent.Load(), pongs()
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		echo()
	}
	busySent, busyPongs := cc.sent.Load()-d0, pongs()-p0
	t.Logf("busy 8 s: %d datagrams to the relay, %d Pongs", busySent, busyPongs)
	if busyPongs > 1 {
		fail("busy: %d Pongs in 8 s of traffic, want at most 1 (the traffic refreshes the mapping)", busyPongs)
	}
	if st := a.Status(); !st.Connected || !st.Since.Equal(since) {
		fail("busy link not kept: connected %v, since %v -> %v (the relay judged it silent?)", st.Connected, since, st.Since)
	}

	// Idle again: the heartbeat resumes within an interval.
	p0 = pongs()
	time.Sleep(2500 * time.Millisecond)
	if got := pongs() - p0; got < 1 {
		fail("idle again: %d Pongs in 2.5 s, want the heartbeat back", got)
	}
}
