package e2e

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/relay"
)

// linkState is the relay's view of the agent's link: "parked", "awake",
// or "" for the smux layout.
func linkState(r *relay.Relay) (string, bool) {
	for _, a := range r.Status().Agents {
		return a.Link, true
	}
	return "", false
}

// echoThrough connects to the exposed port, echoes msg and reports how
// long it took.
func echoTimed(t *testing.T, port uint16, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q, %v; want %q", got, err, msg)
	}
	return time.Since(start)
}

// TestLinkParksWhenIdle: over UDP a new agent and a new relay run the
// parked layout. Registered and idle, the relay holds no smux session for
// the agent ("parked" in its status); a client's connection wakes it, is
// served, and once the agent's link has been idle for ParkAfter (300 ms
// here) both ends park it again; the next connection is served as fast.
func TestLinkParksWhenIdle(t *testing.T) {
	rcfg, acfg, port := fastHeartbeat(t)
	acfg.Tuning.ParkAfter = 300 * time.Millisecond
	r, rlog, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	_, alog, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "echo") })
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nrelay log:\n%s\nagent log:\n%s", append(args, rlog.String(), alog.String())...)
	}
	if s, _ := linkState(r); s != "parked" {
		fail("registered agent's link is %q, want parked", s)
	}
	for i := range 3 {
		d := echoTimed(t, port, "hello "+strconv.Itoa(i))
		if d > 500*time.Millisecond {
			fail("connection %d through a parked link took %v", i, d)
		}
		if s, _ := linkState(r); s != "awake" && i == 0 {
			fail("link is %q right after a connection, want awake", s)
		}
		testenv.WaitFor(t, 5*time.Second, "link parked again", func() bool { s, _ := linkState(r); return s == "parked" })
	}
	st := r.Status()
	if st.Counter["link_parks"] < 3 || st.Counter["links_parked"] != 1 {
		fail("relay counters: link_parks %d, links_parked %d; want at least 3 and 1", st.Counter["link_parks"], st.Counter["links_parked"])
	}
}

// TestParkingOlderPeers: an agent that does not offer parking (as one
// from before it) and a relay that does not (idem) each get the smux
// layout from a new peer, and tunnels work on it.
func TestParkingOlderPeers(t *testing.T) {
	for _, older := range []string{"agent", "relay"} {
		t.Run("older "+older, func(t *testing.T) {
			rcfg, acfg, port := fastHeartbeat(t)
			if older == "agent" {
				acfg.Tuning = acfg.Tuning.OrDefault()
				acfg.Tuning.NoPark = true
			} else {
				rcfg.Tuning = rcfg.Tuning.OrDefault()
				rcfg.Tuning.NoPark = true
			}
			r, rlog, _ := testenv.StartRelay(t, rcfg)
			acfg.Relays[0].Address = r.Addr().String()
			_, alog, _ := testenv.StartAgent(t, acfg)
			testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "echo") })
			echoTimed(t, port, "older "+older)
			if s, ok := linkState(r); !ok || s != "" {
				t.Fatalf("link state %q (agent listed %v), want the smux layout\nrelay log:\n%s\nagent log:\n%s", s, ok, rlog.String(), alog.String())
			}
		})
	}
}

// TestParkedRelayRestart: a relay stopping (SIGTERM) says goodbye on the
// control channel of a parked link too, so the agent is back on the next
// relay at once, as on the smux layout, not after its next heartbeat.
func TestParkedRelayRestart(t *testing.T) {
	for _, noPark := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPark=%v", noPark), func(t *testing.T) {
			rcfg, acfg, port := fastHeartbeat(t)
			rcfg.Listen = "127.0.0.1:" + strconv.Itoa(int(testenv.FreePort(t)))
			acfg.Heartbeat = 15 * time.Second
			acfg.Tuning = acfg.Tuning.OrDefault()
			acfg.Tuning.ParkAfter = 200 * time.Millisecond
			acfg.Tuning.NoPark = noPark
			r, _, stop := testenv.StartRelay(t, rcfg)
			acfg.Relays[0].Address = r.Addr().String()
			_, alog, _ := testenv.StartAgent(t, acfg)
			testenv.WaitFor(t, 10*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "echo") })
			echoTimed(t, port, "x")
			time.Sleep(time.Second)
			if s, _ := linkState(r); noPark == (s == "parked") {
				t.Fatalf("link %q", s)
			}
			stop()
			start := time.Now()
			r2, _, _ := testenv.StartRelay(t, rcfg)
			testenv.WaitFor(t, 10*time.Second, "exposure back", func() bool { return testenv.Exposed(r2, "echo") })
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("back after %v\nagent log:\n%s", d, alog.String())
			}
			t.Logf("back after %v", time.Since(start))
		})
	}
}
