package netsim

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// expectation is what the RFC 5780-style probes must measure for a preset,
// as lab/selfcheck_test.go's table states it for the real NATs.
type expectation struct {
	eim      bool // one public port for every destination (RFC 4787 REQ-1)
	preserve bool // the LAN port kept as the public port (§4.2.1)
	seqDelta int  // consecutive mappings' ports differ by this (0: random)
	fromPort bool // an unsolicited packet from another port of a contacted IP gets in (§5)
	fromIP   bool // ... from another IP
}

var expected = map[NATType]expectation{
	None:           {eim: true, preserve: true, fromPort: true, fromIP: true},
	FullCone:       {eim: true, preserve: true, fromPort: true, fromIP: true},
	RestrictedCone: {eim: true, preserve: true, fromPort: true},
	PortRestricted: {eim: true, preserve: true},
	Symmetric:      {},
	SymmetricSeq:   {seqDelta: 1},
}

// TestSelfCheck proves every preset's behaviours with the lab's probes.
// Each check runs in a synctest bubble: the simulation's timers (mapping
// lifetimes, delays, read deadlines) run on the bubble's clock, so a
// loaded machine cannot stretch a 10 ms wait past a 60 ms lifetime, and
// waits cost no wall time. TestTimeoutRealClock shows the same on the real
// clock.
func TestSelfCheck(t *testing.T) {
	checks := []struct {
		name  string
		check func(*testing.T, NATType, expectation)
		box   bool // needs a NAT box (not None)
	}{
		{"mapping", checkMapping, false},
		{"filtering", checkFiltering, false},
		{"collision", checkCollision, false},
		{"timeout", checkTimeout, true},
		{"hairpin", checkHairpin, true},
		{"loss", checkLoss, true},
		{"delay", checkDelay, true},
	}
	for _, typ := range NATTypes {
		for _, c := range checks {
			if c.box && typ == None {
				continue // no box: nothing expires, hairpins, loses or delays
			}
			t.Run(typ.String()+"/"+c.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { c.check(t, typ, expected[typ]) })
			})
		}
	}
}

// checkMapping: one socket to the responder's three sockets.
func checkMapping(t *testing.T, typ NATType, want expectation) {
	s := newSite(t, typ, nil)
	r1, r2, r3 := listen(t, s.resp, 3478), listen(t, s.resp, 3479), listen(t, s.resp2, 3478)
	pc := listen(t, s.a1, 40000)
	m := []uint16{observe(t, pc, r1).Port(), observe(t, pc, r2).Port(), observe(t, pc, r3).Port()}
	again := observe(t, pc, r1).Port()
	if again != m[0] {
		t.Errorf("second packet to the same destination left on port %d, first on %d", again, m[0])
	}
	distinct := len(slices.Compact(slices.Sorted(slices.Values(m))))
	switch {
	case want.eim && distinct != 1:
		t.Errorf("got ports %v, want one port (endpoint-independent mapping)", m)
	case !want.eim && distinct != 3:
		t.Errorf("got ports %v, want three (address-and-port-dependent mapping)", m)
	}
	if want.preserve && m[0] != 40000 {
		t.Errorf("got public port %d, want the LAN port 40000 kept", m[0])
	}
	if d := want.seqDelta; d != 0 && (int(m[1])-int(m[0]) != d || int(m[2])-int(m[1]) != d) {
		t.Errorf("got ports %v, want steps of %d", m, d)
	}
	if s.nat != nil {
		got, ok := s.nat.Mapped(addrOf(pc), addrOf(r3))
		if !ok || got.Addr() != natIP || got.Port() != m[2] {
			t.Errorf("Mapped = %v, %v; want %v:%d", got, ok, natIP, m[2])
		}
	}
}

// checkFiltering: a fresh socket that talked only to 3478 is sent to from
// 3478, from 3479 (other port) and from the second address (other IP);
// then it sends to those two, and an EIM mapping must not have moved.
func checkFiltering(t *testing.T, typ NATType, want expectation) {
	s := newSite(t, typ, nil)
	r1, r2, r3 := listen(t, s.resp, 3478), listen(t, s.resp, 3479), listen(t, s.resp2, 3478)
	pc := listen(t, s.a1, 0)
	pub := observe(t, pc, r1)
	got := []bool{arrives(t, r1, pub, pc), arrives(t, r2, pub, pc), arrives(t, r3, pub, pc)}
	if want := []bool{true, want.fromPort, want.fromIP}; !slices.Equal(got, want) {
		t.Errorf("answered from 3478, 3479, other IP: got %v, want %v", got, want)
	}
	if want.eim {
		if a, b := observe(t, pc, r2), observe(t, pc, r3); a != pub || b != pub {
			t.Errorf("after the remote spoke first the mapping moved: %v, %v, want %v", a, b, pub)
		}
	}
}

// checkCollision: two LAN hosts bound to the same port each get their own
// mapping, keep it for every destination and get their own packets.
func checkCollision(t *testing.T, typ NATType, want expectation) {
	s := newSite(t, typ, nil)
	r1, r3 := listen(t, s.resp, 3478), listen(t, s.resp2, 3478)
	p1, p2 := listen(t, s.a1, 40000), listen(t, s.a2, 40000)
	m1, m2 := observe(t, p1, r1), observe(t, p2, r1)
	if m1 == m2 {
		t.Fatalf("both hosts mapped to %v", m1)
	}
	if want.eim {
		if a, b := observe(t, p1, r3), observe(t, p2, r3); a != m1 || b != m2 {
			t.Errorf("to the second address: %v, %v; want %v, %v", a, b, m1, m2)
		}
	}
	send(t, r1, m1, "to a1")
	send(t, r1, m2, "to a2")
	if _, msg, ok := recv(t, p1, time.Second); !ok || msg != "to a1" {
		t.Errorf("a1 got %q, %v; want \"to a1\"", msg, ok)
	}
	if _, msg, ok := recv(t, p2, time.Second); !ok || msg != "to a2" {
		t.Errorf("a2 got %q, %v; want \"to a2\"", msg, ok)
	}
}

// checkTimeout: with a 60 ms lifetime (REQ-5 b: configurable), an answer
// 10 ms after the last outbound packet arrives and one 150 ms after does
// not. The full cone's answer comes from the other address, so the
// mapping's own timeout is tested, not a filter entry's.
func checkTimeout(t *testing.T, typ NATType, want expectation) {
	const lifetime = 60 * time.Millisecond
	s := newSite(t, typ, func(c *NATConfig) { c.Timeout = lifetime })
	r1, r3 := listen(t, s.resp, 3478), listen(t, s.resp2, 3478)
	pc := listen(t, s.a1, 0)
	answer := r1
	if want.fromIP {
		answer = r3
	}
	pub := observe(t, pc, r1)
	sent := time.Now()
	time.Sleep(10 * time.Millisecond)
	if !arrives(t, answer, pub, pc) {
		t.Errorf("answer %v after the last outbound packet was dropped", time.Since(sent).Round(time.Millisecond))
	}
	time.Sleep(150*time.Millisecond - time.Since(sent))
	if arrives(t, answer, pub, pc) {
		t.Errorf("answer %v after the last outbound packet got in, lifetime %v", time.Since(sent).Round(time.Millisecond), lifetime)
	}
	if m, ok := s.nat.Mapped(addrOf(pc), addrOf(r1)); ok {
		t.Errorf("mapping %v still listed after its lifetime", m)
	}
}

// checkHairpin: a2 sends to a1's public mapping. With hairpin (REQ-9) it
// arrives from a2's own mapping toward that address (REQ-9 a); without,
// nothing arrives.
func checkHairpin(t *testing.T, typ NATType, want expectation) {
	for _, on := range []bool{true, false} {
		s := newSite(t, typ, func(c *NATConfig) { c.Hairpin = on })
		r1 := listen(t, s.resp, 3478)
		p1, p2 := listen(t, s.a1, 0), listen(t, s.a2, 0)
		m1, m2 := observe(t, p1, r1), observe(t, p2, r1)
		send(t, p2, m1, "hairpin")
		from, _, ok := recv(t, p1, noArrival)
		if ok != on {
			t.Fatalf("hairpin %v: arrived %v", on, ok)
		}
		if !on {
			continue
		}
		wantFrom, _ := s.nat.Mapped(addrOf(p2), m1)
		if want.eim && wantFrom != m2 {
			t.Errorf("a2's mapping toward a1's is %v, toward the responder %v: want one mapping", wantFrom, m2)
		}
		if from != wantFrom || from.Addr() != natIP {
			t.Errorf("hairpinned packet from %v, want a2's mapping %v", from, wantFrom)
		}
	}
}

// checkLoss: 2000 pings through 5 % loss each way lose 9.75 % of round
// trips; the bounds are the lab's (6.5-13 %). The responder answers from
// this goroutine, so the generator's draws come in one order and the
// count is the same on every run.
func checkLoss(t *testing.T, typ NATType, _ expectation) {
	const pings = 2000
	s := newSite(t, typ, func(c *NATConfig) { c.Loss, c.Seed = 0.05, 1 })
	r := listen(t, s.resp, 3478)
	pc := listen(t, s.a1, 0)
	for range pings {
		send(t, pc, addrOf(r), "ping")
	}
	for {
		from, _, ok := recv(t, r, noArrival)
		if !ok {
			break
		}
		send(t, r, from, "pong")
	}
	got := 0
	for {
		if _, _, ok := recv(t, pc, noArrival); !ok {
			break
		}
		got++
	}
	lossPct := 100 * float64(pings-got) / pings
	if lossPct < 6.5 || lossPct > 13 {
		t.Errorf("round-trip loss %.2f %%, want 6.5-13 (9.75 expected)", lossPct)
	}
	if st := s.nat.Stats(); st.Lost != uint64(pings-got) {
		t.Errorf("NAT counted %d lost, %d round trips failed", st.Lost, pings-got)
	}
}

// checkDelay: 10 ms ± 2 ms each way adds 16-24 ms to every round trip.
func checkDelay(t *testing.T, typ NATType, _ expectation) {
	s := newSite(t, typ, func(c *NATConfig) { c.Delay, c.Jitter = 10*time.Millisecond, 2*time.Millisecond })
	r := listen(t, s.resp, 3478)
	go echo(r)
	pc := listen(t, s.a1, 0)
	var rtts []time.Duration
	for range 5 {
		start := time.Now()
		send(t, pc, addrOf(r), "ping")
		if _, _, ok := recv(t, pc, time.Second); !ok {
			t.Fatal("ping lost without loss configured")
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	if rtts[0] < 16*time.Millisecond || rtts[len(rtts)-1] > 24*time.Millisecond {
		t.Errorf("round trips %v: want 16-24 ms each", rtts)
	}
}

// TestAddressDependentMapping: an ADM box (no preset uses it) keeps one
// public port for every port of one destination IP and opens a new one for
// another IP (RFC 4787 section 4.1).
func TestAddressDependentMapping(t *testing.T) {
	s := newSite(t, PortRestricted, func(c *NATConfig) { c.Mapping = ADM; c.Ports = PortSequential })
	r1, r2, r3 := listen(t, s.resp, 3478), listen(t, s.resp, 3479), listen(t, s.resp2, 3478)
	pc := listen(t, s.a1, 40000)
	p1, p2, p3 := observe(t, pc, r1).Port(), observe(t, pc, r2).Port(), observe(t, pc, r3).Port()
	if p1 != p2 {
		t.Errorf("same IP, other port: public ports %d and %d, want one (address-dependent mapping)", p1, p2)
	}
	if p3 == p1 {
		t.Errorf("other IP: public port %d again, want a new one", p3)
	}
}
