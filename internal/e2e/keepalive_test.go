package e2e

import (
	"net"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
)

// noKeepaliveAnswers is a relay socket that never sends a keepalive's
// answer, as a relay from before keepalive datagrams (which drops the
// kind after authenticating it). The kind is in the clear header.
type noKeepaliveAnswers struct{ net.PacketConn }

func (c noKeepaliveAnswers) WriteTo(p []byte, addr net.Addr) (int, error) {
	if len(p) > 1 && p[0] == byte(protocol.TypeData) && p[1] == byte(protocol.DataKeepaliveAck) {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

// TestKeepaliveOlderRelay: against a relay that never answers keepalive
// datagrams the agent goes on with control Pings: with a 1 s heartbeat
// and a relay that drops agents silent for 2 s (5 s for this interval),
// the link stays up for 8 s of idling and the Pongs keep coming.
func TestKeepaliveOlderRelay(t *testing.T) {
	rcfg, acfg, _ := fastHeartbeat(t)
	rcfg.ListenPacket = wrapUDP(func(pc net.PacketConn) net.PacketConn { return noKeepaliveAnswers{pc} })
	r, rlog, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a, alog, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "echo") })
	since := *a.Status().Since
	p0 := a.Status().Counters["pongs"]
	time.Sleep(8 * time.Second)
	st := a.Status()
	if pongs := st.Counters["pongs"] - p0; pongs < 6 || !st.Connected || !st.Since.Equal(since) {
		t.Fatalf("older relay: %d Pongs in 8 s with a 1 s heartbeat, connected %v, since %v -> %v; want at least 6 on the same link\nrelay log:\n%s\nagent log:\n%s",
			pongs, st.Connected, since, st.Since, rlog.String(), alog.String())
	}
}
