package netsim

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// TestCGNAT: a home NAT behind a carrier's port-restricted NAT (as the
// lab's cgnat option): the responder sees the carrier's address, one
// mapping for every destination over a port-restricted home NAT, and
// port-restricted filtering end to end.
func TestCGNAT(t *testing.T) {
	for _, home := range []NATType{PortRestricted, Symmetric} {
		t.Run(home.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				inet := New(Options{})
				defer inet.Close()
				resp, resp2 := mustHost(t, inet, respIP), mustHost(t, inet, respIP2)
				ccfg, _ := PortRestricted.Config()
				carrier, err := inet.AddNAT(cgnIP, ccfg)
				if err != nil {
					t.Fatal(err)
				}
				hcfg, _ := home.Config()
				homeNAT, err := carrier.Inside().AddNAT(cgnLAN, hcfg)
				if err != nil {
					t.Fatal(err)
				}
				a1 := mustHost(t, homeNAT.Inside(), lanIPs[0])
				r1, r2, r3 := listen(t, resp, 3478), listen(t, resp, 3479), listen(t, resp2, 3478)
				pc := listen(t, a1, 0)
				pub := observe(t, pc, r1)
				inner, _ := homeNAT.Mapped(addrOf(pc), addrOf(r1))
				want, _ := carrier.Mapped(inner, addrOf(r1))
				if pub.Addr() != cgnIP || pub != want || inner.Addr() != cgnLAN {
					t.Errorf("responder saw %v, want the carrier's mapping %v of the home mapping %v", pub, want, inner)
				}
				if eim := observe(t, pc, r3) == pub; eim != (home == PortRestricted) {
					t.Errorf("one mapping for two destinations: %v, want %v", eim, home == PortRestricted)
				}
				if arrives(t, r2, pub, pc) || !arrives(t, r1, pub, pc) {
					t.Error("want port-restricted filtering through both NATs")
				}
			})
		})
	}
}

// TestFlush: after Flush (conntrack -F) the old mapping lets nothing in,
// and the next packet makes a new one: the same port where ports are
// preserved, a new one behind a symmetric NAT.
func TestFlush(t *testing.T) {
	for _, typ := range []NATType{FullCone, PortRestricted, Symmetric} {
		t.Run(typ.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSite(t, typ, nil)
				r := listen(t, s.resp, 3478)
				pc := listen(t, s.a1, 40000)
				before := observe(t, pc, r)
				s.nat.Flush()
				if arrives(t, r, before, pc) {
					t.Error("packet to a flushed mapping got in")
				}
				if st := s.nat.Stats(); st.NoMapping != 1 {
					t.Errorf("NoMapping = %d, want 1", st.NoMapping)
				}
				after := observe(t, pc, r)
				if same := after == before; same != expected[typ].preserve {
					t.Errorf("mapping before %v, after %v: same %v, want %v", before, after, same, expected[typ].preserve)
				}
			})
		})
	}
}

// TestSequentialDelta: a configurable step, including a negative one,
// skipping ports in use (RFC 4787 §4.2.1 leaves the order open; port
// prediction relies on a fixed step).
func TestSequentialDelta(t *testing.T) {
	for _, delta := range []int{2, -3} {
		synctest.Test(t, func(t *testing.T) {
			s := newSite(t, Symmetric, func(c *NATConfig) {
				c.Ports, c.PortDelta, c.PortMin, c.PortMax = PortSequential, delta, 30000, 30099
			})
			pc := listen(t, s.a1, 0)
			var ports []int
			for i := range 4 {
				r := listen(t, s.resp, uint16(4000+i))
				ports = append(ports, int(observe(t, pc, r).Port()))
			}
			for i := 1; i < len(ports); i++ {
				if ports[i]-ports[i-1] != delta {
					t.Fatalf("delta %d: got ports %v", delta, ports)
				}
			}
			if delta < 0 && ports[0] != 30099 || delta > 0 && ports[0] != 30000 {
				t.Errorf("delta %d: first port %d, want the end of the range it counts from", delta, ports[0])
			}
		})
	}
}

// TestInboundRefresh: inbound packets keep a mapping alive only with
// InboundRefresh (REQ-6 a); outbound ones always do (REQ-6).
func TestInboundRefresh(t *testing.T) {
	for _, refresh := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			s := newSite(t, FullCone, func(c *NATConfig) { c.Timeout, c.InboundRefresh = 50*time.Millisecond, refresh })
			r := listen(t, s.resp, 3478)
			pc := listen(t, s.a1, 0)
			pub := observe(t, pc, r)
			alive := true
			for range 5 { // 150 ms of inbound traffic only, every 30 ms
				time.Sleep(30 * time.Millisecond)
				alive = arrives(t, r, pub, pc)
			}
			if alive != refresh {
				t.Errorf("inbound refresh %v: mapping alive after 150 ms of inbound traffic: %v", refresh, alive)
			}
			// Outbound packets every 30 ms keep it alive either way.
			pub = observe(t, pc, r)
			for range 5 {
				time.Sleep(30 * time.Millisecond)
				send(t, pc, addrOf(r), "keepalive")
				recv(t, r, noArrival)
			}
			if !arrives(t, r, pub, pc) {
				t.Error("mapping refreshed by outbound traffic expired")
			}
		})
	}
}

// TestTimeoutRealClock: the same lifetime check on the real clock, with a
// 50 ms lifetime. On a loaded machine the early probe may come late; it
// is only judged when it came in time.
func TestTimeoutRealClock(t *testing.T) {
	const lifetime = 50 * time.Millisecond
	s := newSite(t, PortRestricted, func(c *NATConfig) { c.Timeout = lifetime })
	r := listen(t, s.resp, 3478)
	pc := listen(t, s.a1, 0)
	pub := observe(t, pc, r)
	sent := time.Now()
	ok := arrives(t, r, pub, pc)
	if early := time.Since(sent); early < lifetime/2 && !ok {
		t.Errorf("answer after %v was dropped, lifetime %v", early, lifetime)
	}
	time.Sleep(2 * lifetime)
	if arrives(t, r, pub, pc) {
		t.Errorf("answer after %v got in, lifetime %v", time.Since(sent), lifetime)
	}
}

// TestLossDeterministic: one seed, one loss pattern.
func TestLossDeterministic(t *testing.T) {
	lost := func(seed uint64) uint64 {
		s := newSite(t, FullCone, func(c *NATConfig) { c.Loss, c.Seed = 0.3, seed })
		pc := listen(t, s.a1, 0)
		for range 500 {
			send(t, pc, netip.AddrPortFrom(respIP, 9), "x")
		}
		return s.nat.Stats().Lost
	}
	a, b, c := lost(7), lost(7), lost(8)
	if a != b || a == c {
		t.Errorf("lost with seed 7: %d and %d, with seed 8: %d; want the same twice, then different", a, b, c)
	}
}

// TestPortExhaustion: a pool of two ports gives two mappings and drops
// the third flow's packets (no port overloading, REQ-3).
func TestPortExhaustion(t *testing.T) {
	s := newSite(t, Symmetric, func(c *NATConfig) { c.PortMin, c.PortMax = 5000, 5001 })
	pc := listen(t, s.a1, 0)
	for i := range 3 {
		send(t, pc, netip.AddrPortFrom(respIP, uint16(100+i)), "x")
	}
	if st := s.nat.Stats(); st.Out != 2 || st.Exhausted != 1 {
		t.Errorf("got %+v, want 2 out and 1 exhausted", st)
	}
}
