package link

import (
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/xtaci/smux"
)

// parkedPair returns an agent's end (asks to park) and a relay's end of
// a link in the parked layout, over an in-memory wire, with control
// channels opened and confirmed by a first message.
func parkedPair(t *testing.T, after time.Duration, drop func() bool) (agent, relay *Link, actl, rctl Conn) {
	t.Helper()
	pa, pb := linkedConns(t, drop)
	tn := DefaultTuning()
	tn.ParkAfter = after
	var err error
	if agent, err = NewParkingUDPLink(pa, 42, tn, false); err != nil {
		t.Fatal(err)
	}
	if relay, err = NewParkingUDPLink(pb, 42, tn, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close(); relay.Close() })
	if actl, err = agent.OpenControl(); err != nil {
		t.Fatal(err)
	}
	if _, err := actl.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if rctl, err = relay.AcceptControl(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rctl, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	return agent, relay, actl, rctl
}

// echoStreams accepts l's streams and echoes each until it ends.
func echoStreams(l *Link) {
	for {
		st, err := l.AcceptStream()
		if err != nil {
			return
		}
		go func() {
			io.Copy(st, st)
			st.Close()
		}()
	}
}

// roundTrip opens a stream on l, sends msg, reads it back and closes.
func roundTrip(l *Link, msg string) error {
	st, err := l.OpenStream()
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := st.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(st, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

func waitParked(t *testing.T, within time.Duration, ls ...*Link) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		all := true
		for _, l := range ls {
			all = all && l.Parked()
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			for i, l := range ls {
				p, w, s := l.ParkStats()
				t.Logf("link %d: parked %v, streams %d, parks %d wakes %d stale %d", i, l.Parked(), l.NumStreams(), p, w, s)
			}
			t.Fatalf("links not parked within %v", within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestParkedLinkLifecycle: a link in the parked layout holds no smux
// session until the first stream, whichever end opens it; it parks again
// once idle for ParkAfter (both ends, no smux goroutine left), the
// control channel keeps working throughout, and the first stream after
// parking is answered within a few round trips of the wire.
func TestParkedLinkLifecycle(t *testing.T) {
	g0 := runtime.NumGoroutine()
	agent, relay, actl, rctl := parkedPair(t, 200*time.Millisecond, nil)
	if !agent.Parked() || !relay.Parked() {
		t.Fatal("a fresh link has a data conversation before any stream")
	}
	go echoStreams(agent)
	go echoStreams(relay)
	for round := range 3 {
		opener := relay
		if round == 1 {
			opener = agent
		}
		start := time.Now()
		if err := roundTrip(opener, "ping"); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Errorf("round %d: first stream after parking took %v", round, d)
		}
		if agent.Parked() || relay.Parked() {
			t.Fatalf("round %d: parked right after a stream", round)
		}
		waitParked(t, 3*time.Second, agent, relay)
		if _, err := actl.Write([]byte("ctl")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rctl, make([]byte, 3)); err != nil {
			t.Fatal(err)
		}
	}
	ap, aw, _ := agent.ParkStats()
	rp, rw, _ := relay.ParkStats()
	if ap != 3 || rp != 3 || aw != 3 || rw != 3 {
		t.Fatalf("parks/wakes: agent %d/%d, relay %d/%d; want 3 each", ap, aw, rp, rw)
	}
	// Parked, the links hold only the echo loops' goroutines (waiting in
	// AcceptStream): smux's three per session are gone.
	time.Sleep(50 * time.Millisecond)
	if g := runtime.NumGoroutine() - g0; g > 2 {
		t.Fatalf("%d goroutines above the start while parked, want the 2 accept loops", g)
	}
}

// TestParkedLinkBusyStaysAwake: a stream that stays open (idle or not)
// keeps the data conversation, and closing it lets the link park.
func TestParkedLinkBusyStaysAwake(t *testing.T) {
	agent, relay, _, _ := parkedPair(t, 100*time.Millisecond, nil)
	go echoStreams(agent)
	st, err := relay.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("x"))
	io.ReadFull(st, make([]byte, 1))
	time.Sleep(600 * time.Millisecond)
	if agent.Parked() || relay.Parked() {
		t.Fatal("parked under an open stream")
	}
	st.Close()
	waitParked(t, 3*time.Second, agent, relay)
}

// TestParkRaces opens streams from both ends at moments spread around
// the park exchange (ParkAfter 5 ms: after each round's streams end the
// agent asks to park within a few ms, and the next round's streams race
// its request, the relay's answer and the teardown) over a wire that
// loses 5% of datagrams: every stream must get its echo, none may be
// lost to a parked epoch.
func TestParkRaces(t *testing.T) {
	agent, relay, _, _ := parkedPair(t, 5*time.Millisecond, lossy(5))
	go echoStreams(agent)
	go echoStreams(relay)
	for round := range 150 {
		time.Sleep(time.Duration(round%13) * time.Millisecond)
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for i, l := range []*Link{agent, relay} {
			if (round+i)%3 == 0 {
				continue // sometimes one end alone
			}
			wg.Go(func() {
				if err := roundTrip(l, fmt.Sprintf("round %d end %d", round, i)); err != nil {
					errs <- fmt.Errorf("round %d, end %d: %w", round, i, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	ap, aw, _ := agent.ParkStats()
	rp, rw, rs := relay.ParkStats()
	t.Logf("agent parks %d wakes %d; relay parks %d wakes %d stale %d", ap, aw, rp, rw, rs)
	if rp < 20 {
		t.Fatalf("only %d parks: the test did not race the park exchange", rp)
	}
	waitParked(t, 5*time.Second, agent, relay)
}

// TestSmuxLayoutLink: a link in the smux layout (an older peer, TCP)
// serves the same methods: the control channel is the first stream.
func TestSmuxLayoutLink(t *testing.T) {
	pa, pb := linkedConns(t, nil)
	agent, err := NewUDPLink(pa, 9, DefaultTuning(), false)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := NewUDPLink(pb, 9, DefaultTuning(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	defer relay.Close()
	actl, _ := agent.OpenControl()
	actl.Write([]byte("hi"))
	rctl, err := relay.AcceptControl(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rctl.(*smux.Stream); !ok {
		t.Fatalf("control channel is %T, want the first smux stream", rctl)
	}
	io.ReadFull(rctl, make([]byte, 2))
	go echoStreams(agent)
	if err := roundTrip(relay, "data"); err != nil {
		t.Fatal(err)
	}
	if agent.Parking() || agent.Parked() || relay.NumStreams() < 1 {
		t.Fatal("smux layout reports parking")
	}
}

// TestIdleParkedLinkCost compares n idle link pairs in the smux layout
// (one stream open, as the control stream is) with n parked ones (whose
// control channel and one tunneled stream have been used): heap and
// goroutines per link end. Parked, a link end holds no goroutine and a
// few KB (its PacketConn and the control conversation's frozen words).
func TestIdleParkedLinkCost(t *testing.T) {
	const n = 200
	smuxCost := measureIdle(t, n, NewUDPLink, 100*time.Millisecond, nil)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	links := make([]*Link, 0, 2*n)
	for range n {
		agent, relay, _, _ := parkedPair(t, 20*time.Millisecond, nil)
		go echoStreams(agent)
		if err := roundTrip(relay, "x"); err != nil {
			t.Fatal(err)
		}
		links = append(links, agent, relay)
	}
	waitParked(t, 10*time.Second, links...)
	for _, l := range links {
		if !l.park.ctl.frozenNow() {
			t.Fatal("an idle control conversation is not frozen")
		}
	}
	time.Sleep(100 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	heap := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(2*n)
	// Less the test's echo loops. A timer's goroutine (a last ARQ tick, a
	// park check) may be running at the instant of counting: count again
	// for up to a second until none is.
	goroutines := float64(runtime.NumGoroutine()-g0-n) / float64(2*n)
	for deadline := time.Now().Add(time.Second); goroutines > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		goroutines = float64(runtime.NumGoroutine()-g0-n) / float64(2*n)
	}
	t.Logf("per idle link end (%d pairs): smux layout %.0f heap bytes, %.1f goroutines; parked %.0f heap bytes, %.1f goroutines",
		n, smuxCost.heap, smuxCost.goroutines, heap, goroutines)
	if heap > smuxCost.heap/4 || goroutines > 0 {
		t.Errorf("parked link end holds %.0f bytes and %.1f goroutines; smux layout %.0f and %.1f", heap, goroutines, smuxCost.heap, smuxCost.goroutines)
	}
	runtime.KeepAlive(links)
}
