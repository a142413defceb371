package lab

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// filterFacts is the filtering part of a probe report.
type filterFacts struct {
	FilterMapped  string   `json:"filter_mapped"`
	FromSame      bool     `json:"from_same"`
	FromOtherPort bool     `json:"from_other_port"`
	FromOtherIP   bool     `json:"from_other_ip"`
	MappedAfter   []string `json:"mapped_after_inbound"`
}

// expectation is what RFC 4787 says a behaviour does, in the terms the
// probe measures (mapping §4.1, filtering §5, as RFC 5780 tests them).
type expectation struct {
	eim                      bool // same public address for every destination
	sameIP, otherPort, other bool // which unsolicited senders get through
	sequential               bool // EDM ports advance by one
	noUDP                    bool
}

var expected = map[Behaviour]expectation{
	None:           {eim: true, sameIP: true, otherPort: true, other: true},
	FullCone:       {eim: true, sameIP: true, otherPort: true, other: true},
	RestrictedCone: {eim: true, sameIP: true, otherPort: true},
	PortRestricted: {eim: true, sameIP: true},
	Symmetric:      {sameIP: true},
	SymmetricSeq:   {sameIP: true, sequential: true},
	UDPBlocked:     {noUDP: true},
}

// checkFilter compares measured filtering with the expectation, and for
// an endpoint-independent mapping checks that the unsolicited packets did
// not move it: a remote that speaks first (hole punching) must find the
// same mapping when the LAN host answers.
func checkFilter(t *testing.T, b Behaviour, f filterFacts) {
	t.Helper()
	want := expected[b]
	if f.FromSame != want.sameIP || f.FromOtherPort != want.otherPort || f.FromOtherIP != want.other {
		t.Fatalf("%s filtering: same=%v other-port=%v other-ip=%v; want %v %v %v: behaviour mislabelled",
			b, f.FromSame, f.FromOtherPort, f.FromOtherIP, want.sameIP, want.otherPort, want.other)
	}
	if want.eim {
		for _, m := range f.MappedAfter {
			if m != f.FilterMapped {
				t.Fatalf("%s: mapping %s became %v after unsolicited packets from those servers: not endpoint-independent when the remote speaks first",
					b, f.FilterMapped, f.MappedAfter)
			}
		}
	}
}

// TestSelfCheck proves each behaviour before any other test relies on it:
// the lab is only as honest as this test.
func TestSelfCheck(t *testing.T) {
	for _, b := range Behaviours {
		t.Run(b.String(), func(t *testing.T) {
			want := expected[b]
			l := up(t, map[string]Site{"a": {Behaviour: b}})
			startResponder(t, l)
			var r struct {
				Local  string   `json:"local"`
				Mapped []string `json:"mapped"`
				filterFacts
			}
			probe(t, l, "a1", &r, append([]string{"nat"}, probeServers...)...)
			t.Logf("%s: mapped %v; filtering same=%v other-port=%v other-ip=%v; mapping %s after unsolicited inbound %v",
				b, r.Mapped, r.FromSame, r.FromOtherPort, r.FromOtherIP, r.FilterMapped, r.MappedAfter)
			if want.noUDP {
				for _, m := range append(r.Mapped, r.FilterMapped) {
					if m != "" {
						t.Fatalf("UDP got through a udp-blocked gateway: mapped %v", r.Mapped)
					}
				}
				if r.FromSame || r.FromOtherPort || r.FromOtherIP {
					t.Fatalf("UDP came in through a udp-blocked gateway")
				}
				return
			}
			var ports []int
			for i, m := range r.Mapped {
				ap, err := netip.ParseAddrPort(m)
				if err != nil {
					t.Fatalf("no mapping from server %d: %q", i, m)
				}
				if ap.Addr().String() != l.PublicIP("a") {
					t.Fatalf("mapped address %v, want the site's public %s", ap.Addr(), l.PublicIP("a"))
				}
				ports = append(ports, int(ap.Port()))
			}
			eim := ports[0] == ports[1] && ports[1] == ports[2]
			if eim != want.eim {
				t.Fatalf("mapping endpoint-independent = %v (ports %v), want %v: behaviour mislabelled", eim, ports, want.eim)
			}
			if b == None && r.Mapped[0] != strings.Replace(r.Local, "0.0.0.0", l.HostIP("a1"), 1) {
				t.Fatalf("no-NAT site: mapped %s, want the host's own %s", r.Mapped[0], r.Local)
			}
			if !want.eim {
				seq := ports[1] == ports[0]+1 && ports[2] == ports[1]+1
				if seq != want.sequential {
					t.Fatalf("sequential allocation = %v (ports %v), want %v: behaviour mislabelled", seq, ports, want.sequential)
				}
				if !want.sequential && (abs(ports[1]-ports[0]) < 4 || abs(ports[2]-ports[1]) < 4) {
					t.Fatalf("random allocation, but ports %v are close neighbours: predictable", ports)
				}
			}
			checkFilter(t, b, r.filterFacts)
		})
	}
}

func abs(n int) int { return max(n, -n) }

// TestSelfCheckPortCollision: two LAN hosts use the same local port at
// once, so the NAT cannot preserve the port for both (RFC 4787 §4.2.1).
// Each must still keep one mapping toward every destination (EIM
// behaviours) and receive its own inbound packets, not its neighbour's.
// This is what the mapping tables in nat.go are for: Linux masquerade
// alone would give the second host a different port per destination.
func TestSelfCheckPortCollision(t *testing.T) {
	for _, b := range []Behaviour{FullCone, RestrictedCone, PortRestricted, Symmetric} {
		t.Run(b.String(), func(t *testing.T) {
			l := up(t, map[string]Site{"a": {Behaviour: b, Hosts: 2}})
			startResponder(t, l)
			// a1 holds its mapping while a2 collides with it, then checks.
			p, err := l.Start(testCtx(t), "a1", append([]string{bins.probe, "hold", "40000", "4s"}, probeServers...)...)
			if err != nil {
				t.Fatal(err)
			}
			var first struct {
				Mapped string `json:"mapped"`
			}
			waitLine(t, p, &first)
			var r2 filterFacts
			probe(t, l, "a2", &r2, append([]string{"hold", "40000", "0s"}, probeServers...)...)
			<-p.Done()
			var r1 filterFacts
			lastLine(t, p, &r1)
			t.Logf("%s: a1:40000 mapped %s, after unsolicited inbound %v, filtering %v/%v/%v; a2:40000 mapped %s, after %v, filtering %v/%v/%v",
				b, r1.FilterMapped, r1.MappedAfter, r1.FromSame, r1.FromOtherPort, r1.FromOtherIP,
				r2.FilterMapped, r2.MappedAfter, r2.FromSame, r2.FromOtherPort, r2.FromOtherIP)
			if r1.FilterMapped == "" || r1.FilterMapped == r2.FilterMapped {
				t.Fatalf("a1 and a2 share mapping %q: the collision did not happen", r1.FilterMapped)
			}
			checkFilter(t, b, r1)
			checkFilter(t, b, r2)
		})
	}
}

// TestSelfCheckTimeout: a mapping lives as long as the site's timeout
// option says (conntrack timeouts are per namespace, and the cone's
// mapping tables carry the same timeout). Behind the full cone the late
// answer comes from the responder's other address, so it is the mapping
// table, not a conntrack entry, that lets it in.
func TestSelfCheckTimeout(t *testing.T) {
	for _, c := range []struct {
		b    Behaviour
		from string // responder socket that answers
	}{{PortRestricted, "0"}, {FullCone, "2"}} {
		t.Run(c.b.String(), func(t *testing.T) {
			t.Parallel()
			l := up(t, map[string]Site{"a": {Behaviour: c.b, Timeout: 4 * time.Second}})
			startResponder(t, l)
			var short, long struct {
				Alive bool `json:"alive"`
			}
			probe(t, l, "a1", &short, "expire", probeServers[0], "2", c.from)
			probe(t, l, "a1", &long, "expire", probeServers[0], "7", c.from)
			t.Logf("%s, timeout 4s, answer from socket %s: after 2s alive=%v, after 7s alive=%v", c.b, c.from, short.Alive, long.Alive)
			if !short.Alive || long.Alive {
				t.Fatalf("with a 4s mapping timeout: alive after 2s = %v (want true), after 7s = %v (want false)", short.Alive, long.Alive)
			}
		})
	}
}

// TestSelfCheckHairpin: host a2 sends to a1's public mapping. With
// hairpin on it arrives, from a2's own public mapping (not its private
// address); with hairpin off it does not arrive.
func TestSelfCheckHairpin(t *testing.T) {
	for _, c := range []struct {
		b       Behaviour
		hairpin bool
	}{{FullCone, true}, {RestrictedCone, true}, {PortRestricted, true}, {FullCone, false}, {PortRestricted, false}} {
		name := c.b.String() + "/hairpin-off"
		if c.hairpin {
			name = c.b.String() + "/hairpin"
		}
		t.Run(name, func(t *testing.T) {
			l := up(t, map[string]Site{"a": {Behaviour: c.b, Hairpin: c.hairpin, Hosts: 2}})
			startResponder(t, l)
			p, err := l.Start(testCtx(t), "a1", bins.probe, "hairpin-listen", probeServers[0])
			if err != nil {
				t.Fatal(err)
			}
			var first, sender struct {
				Mapped string `json:"mapped"`
			}
			waitLine(t, p, &first)
			probe(t, l, "a2", &sender, "hairpin-send", first.Mapped, probeServers[0])
			<-p.Done()
			var r struct {
				Works bool   `json:"works"`
				From  string `json:"from"`
			}
			lastLine(t, p, &r)
			t.Logf("%s hairpin=%v: a1 mapped %s; a2 (mapped %s) sent to it: arrived=%v from %q", c.b, c.hairpin, first.Mapped, sender.Mapped, r.Works, r.From)
			if r.Works != c.hairpin {
				t.Fatalf("hairpin option %v, measured %v", c.hairpin, r.Works)
			}
			if c.hairpin && r.From != sender.Mapped {
				t.Fatalf("hairpinned packet came from %s, want a2's public mapping %s (RFC 4787 REQ-9)", r.From, sender.Mapped)
			}
		})
	}
}

// waitLine waits for the first JSON line a background probe prints.
func waitLine(t *testing.T, p *Proc, v any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if line, _, ok := strings.Cut(p.Output(), "\n"); ok {
			if err := json.Unmarshal([]byte(line), v); err != nil {
				t.Fatalf("probe printed %q: %v", line, err)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("probe printed nothing: %q", p.Output())
}

// lastLine decodes the last JSON line of a finished background probe.
func lastLine(t *testing.T, p *Proc, v any) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(p.Output()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		t.Fatalf("probe printed %q: %v", p.Output(), err)
	}
}

func TestSelfCheckLoss(t *testing.T) {
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted, LossPct: 5}})
	startResponder(t, l)
	var r struct {
		Sent     int     `json:"sent"`
		Received int     `json:"received"`
		LossPct  float64 `json:"round_trip_loss_pct"`
	}
	probe(t, l, "a1", &r, "loss", probeServers[0], "2000")
	// 5% each way: 1-(0.95^2) = 9.75% round trip. Over 2000 pings the
	// standard deviation is 0.66 points; the bounds are about 5 of them.
	t.Logf("loss=5%% each way: %d/%d pongs, round-trip loss %.2f%% (expected 9.75%%)", r.Received, r.Sent, r.LossPct)
	if r.LossPct < 6.5 || r.LossPct > 13 {
		t.Fatalf("round-trip loss %.2f%%, want about 9.75%%: the loss emulation does not do what it says", r.LossPct)
	}
}

func TestSelfCheckCGNAT(t *testing.T) {
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted, CGNAT: true}})
	startResponder(t, l)
	var r struct {
		Mapped []string `json:"mapped"`
		filterFacts
	}
	probe(t, l, "a1", &r, append([]string{"nat"}, probeServers...)...)
	t.Logf("port-restricted under a port-restricted carrier NAT: mapped %v; filtering same=%v other-port=%v other-ip=%v",
		r.Mapped, r.FromSame, r.FromOtherPort, r.FromOtherIP)
	ap, err := netip.ParseAddrPort(r.Mapped[0])
	if err != nil || ap.Addr().String() != l.PublicIP("a") || l.PublicIP("a") != "203.0.113.111" {
		t.Fatalf("behind carrier NAT: mapped %v, want the carrier's address %s", r.Mapped, l.PublicIP("a"))
	}
	if r.Mapped[1] != r.Mapped[0] || r.Mapped[2] != r.Mapped[0] {
		t.Fatalf("two endpoint-independent NATs in a row: mapping varies by destination %v", r.Mapped)
	}
	checkFilter(t, PortRestricted, r.filterFacts)
}

// TestSelfCheckDelay: delay=20ms holds frames 20 ms each way on the site's
// uplink, so a round trip grows by about 40 ms.
func TestSelfCheckDelay(t *testing.T) {
	var base, slow struct {
		Samples  int     `json:"samples"`
		MedianMs float64 `json:"median_ms"`
	}
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted}})
	startResponder(t, l)
	probe(t, l, "a1", &base, "rtt", probeServers[0], "50")
	l.Close()
	l = up(t, map[string]Site{"a": {Behaviour: PortRestricted, Delay: 20 * time.Millisecond}})
	startResponder(t, l)
	probe(t, l, "a1", &slow, "rtt", probeServers[0], "50")
	added := slow.MedianMs - base.MedianMs
	t.Logf("delay=20ms each way: median RTT %.2f ms -> %.2f ms (+%.1f ms, expected +40)", base.MedianMs, slow.MedianMs, added)
	if slow.Samples < 45 || added < 38 || added > 50 {
		t.Fatalf("added RTT %.1f ms over %d samples, want about 40: the delay emulation does not do what it says", added, slow.Samples)
	}
}
