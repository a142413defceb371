package lab

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestSelfCheck proves each behaviour before any other test relies on it:
// the lab is only as honest as this test. Expectations follow RFC 4787
// (mapping §4.1, filtering §5) as measured by RFC 5780's tests.
func TestSelfCheck(t *testing.T) {
	cases := []struct {
		b                        Behaviour
		eim                      bool // same public address for every destination
		sameIP, otherPort, other bool // which unsolicited senders get through
		sequential               bool // EDM ports advance by one
		noUDP                    bool
	}{
		{b: None, eim: true, sameIP: true, otherPort: true, other: true},
		{b: FullCone, eim: true, sameIP: true, otherPort: true, other: true},
		{b: RestrictedCone, eim: true, sameIP: true, otherPort: true, other: false},
		{b: PortRestricted, eim: true, sameIP: true, otherPort: false, other: false},
		{b: Symmetric, eim: false, sameIP: true, otherPort: false, other: false},
		{b: SymmetricSeq, eim: false, sameIP: true, otherPort: false, other: false, sequential: true},
		{b: UDPBlocked, noUDP: true},
	}
	for _, c := range cases {
		t.Run(c.b.String(), func(t *testing.T) {
			l := up(t, map[string]Site{"a": {Behaviour: c.b}})
			startResponder(t, l)
			var r struct {
				Local         string   `json:"local"`
				Mapped        []string `json:"mapped"`
				FromSame      bool     `json:"from_same"`
				FromOtherPort bool     `json:"from_other_port"`
				FromOtherIP   bool     `json:"from_other_ip"`
			}
			probe(t, l, "a1", &r, append([]string{"nat"}, probeServers...)...)
			t.Logf("%s: mapped %v, filtering same=%v other-port=%v other-ip=%v", c.b, r.Mapped, r.FromSame, r.FromOtherPort, r.FromOtherIP)
			if c.noUDP {
				for _, m := range r.Mapped {
					if m != "" {
						t.Fatalf("UDP got through a udp-blocked gateway: mapped %v", r.Mapped)
					}
				}
				return
			}
			var ports []uint16
			for i, m := range r.Mapped {
				ap, err := netip.ParseAddrPort(m)
				if err != nil {
					t.Fatalf("no mapping from server %d: %q", i, m)
				}
				if ap.Addr().String() != l.PublicIP("a") {
					t.Fatalf("mapped address %v, want the gateway's public %s", ap.Addr(), l.PublicIP("a"))
				}
				ports = append(ports, ap.Port())
			}
			eim := ports[0] == ports[1] && ports[1] == ports[2]
			if eim != c.eim {
				t.Fatalf("mapping endpoint-independent = %v (ports %v), want %v: behaviour mislabelled", eim, ports, c.eim)
			}
			if c.b == None && r.Mapped[0] != strings.Replace(r.Local, "0.0.0.0", l.HostIP("a1"), 1) {
				t.Fatalf("no-NAT site: mapped %s, want the host's own %s", r.Mapped[0], r.Local)
			}
			if !c.eim {
				seq := ports[1] == ports[0]+1 && ports[2] == ports[1]+1
				if seq != c.sequential {
					t.Fatalf("sequential allocation = %v (ports %v), want %v", seq, ports, c.sequential)
				}
			}
			if r.FromSame != c.sameIP || r.FromOtherPort != c.otherPort || r.FromOtherIP != c.other {
				t.Fatalf("filtering: same=%v other-port=%v other-ip=%v; want %v %v %v: behaviour mislabelled",
					r.FromSame, r.FromOtherPort, r.FromOtherIP, c.sameIP, c.otherPort, c.other)
			}
		})
	}
}

// TestSelfCheckTimeout: a mapping lives exactly as long as the site's
// timeout option says (conntrack timeouts are per namespace).
func TestSelfCheckTimeout(t *testing.T) {
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted, Timeout: 4e9}})
	startResponder(t, l)
	var short, long struct {
		Alive bool `json:"alive"`
	}
	probe(t, l, "a1", &short, "expire", probeServers[0], "2")
	probe(t, l, "a1", &long, "expire", probeServers[0], "7")
	t.Logf("timeout 4s: answer after 2s alive=%v, after 7s alive=%v", short.Alive, long.Alive)
	if !short.Alive || long.Alive {
		t.Fatalf("with a 4s mapping timeout: alive after 2s = %v (want true), after 7s = %v (want false)", short.Alive, long.Alive)
	}
}

// TestSelfCheckHairpin: host a2 sends to a1's public mapping. With
// hairpin on it arrives, from a2's public mapping (not its private
// address); with hairpin off it does not arrive.
func TestSelfCheckHairpin(t *testing.T) {
	for _, hairpin := range []bool{true, false} {
		l := up(t, map[string]Site{"a": {Behaviour: FullCone, Hairpin: hairpin, Hosts: 2}})
		startResponder(t, l)
		p, err := l.Start("a1", bins.probe, "hairpin-listen", probeServers[0])
		if err != nil {
			t.Fatal(err)
		}
		var first struct {
			Mapped string `json:"mapped"`
		}
		waitLine(t, p, &first)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		l.Run(ctx, "a2", bins.probe, "send", first.Mapped, "hairpin")
		cancel()
		<-p.Done()
		var r struct {
			Works bool   `json:"works"`
			From  string `json:"from"`
		}
		lines := strings.Split(strings.TrimSpace(p.Output()), "\n")
		json.Unmarshal([]byte(lines[len(lines)-1]), &r)
		t.Logf("hairpin=%v: a1 mapped %s, a2's packet arrived=%v from %q", hairpin, first.Mapped, r.Works, r.From)
		if r.Works != hairpin {
			t.Fatalf("hairpin option %v, measured %v", hairpin, r.Works)
		}
		if hairpin && !strings.HasPrefix(r.From, l.PublicIP("a")+":") {
			t.Fatalf("hairpinned packet came from %s, want a2's public mapping on %s", r.From, l.PublicIP("a"))
		}
		l.Close()
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

func TestSelfCheckLoss(t *testing.T) {
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted, LossPct: 5}})
	startResponder(t, l)
	var r struct {
		Sent     int     `json:"sent"`
		Received int     `json:"received"`
		LossPct  float64 `json:"round_trip_loss_pct"`
	}
	probe(t, l, "a1", &r, "loss", probeServers[0], "2000")
	// 5% each way: 1-(0.95^2) = 9.75% round trip.
	t.Logf("loss=5%% each way: %d/%d pongs, round-trip loss %.2f%% (expected 9.75%%)", r.Received, r.Sent, r.LossPct)
	if r.LossPct < 6 || r.LossPct > 14 {
		t.Fatalf("round-trip loss %.2f%%, want about 9.75%%: the loss emulation does not do what it says", r.LossPct)
	}
}

func TestSelfCheckCGNAT(t *testing.T) {
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted, CGNAT: true}})
	startResponder(t, l)
	var r struct {
		Mapped []string `json:"mapped"`
	}
	probe(t, l, "a1", &r, append([]string{"nat"}, probeServers...)...)
	ap, err := netip.ParseAddrPort(r.Mapped[0])
	if err != nil || ap.Addr().String() != l.PublicIP("a") || l.PublicIP("a") != "203.0.113.111" {
		t.Fatalf("behind carrier NAT: mapped %v, want the carrier's address %s", r.Mapped, l.PublicIP("a"))
	}
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
