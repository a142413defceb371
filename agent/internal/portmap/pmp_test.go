package portmap

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// pmpClient is a client for a fake gateway on loopback whose UPnP side
// is silent unless ssdp is given.
func pmpClient(t *testing.T, pmpPort uint16, ssdp netip.AddrPort) *Client {
	if !ssdp.IsValid() {
		ssdp = silentSSDP(t)
	}
	return New(Config{Port: 40000, Gateway: loop, Local: loop, PMPPort: pmpPort, SSDP: ssdp})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestPCPWire pins a MAP request in hex (RFC 6887 §7.1, §11.1).
func TestPCPWire(t *testing.T) {
	nonce := [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	got := hex.EncodeToString(appendPCPMap(nil, netip.MustParseAddr("10.0.1.2"), nonce, 40000, 40001, 1200))
	want := "02010000" + "000004b0" + "00000000000000000000ffff0a000102" +
		"0102030405060708090a0b0c" + "11000000" + "9c40" + "9c41" + "00000000000000000000ffff00000000"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := hex.EncodeToString(appendPMPMap(nil, 40000, 40001, 1200)); got != "000100009c409c41000004b0" {
		t.Errorf("nat-pmp map request: got %s", got)
	}
}

// TestPCPMapRenewDelete: a PCP gateway grants the mapping, a renewal keeps
// the nonce and the port, Unmap removes it from the gateway.
func TestPCPMapRenewDelete(t *testing.T) {
	gw := newFakePMP(t, true)
	c := pmpClient(t, gw.port(), netip.AddrPort{})
	m, err := c.Map(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddrPort("198.51.100.7:41000")
	if m.Proto != PCP || m.External != want || m.Lifetime != DefaultLifetime || m.Restarted {
		t.Fatalf("got %+v, want pcp %v for %v", m, want, DefaultLifetime)
	}
	if l, ok := gw.mapped(40000); !ok || l != uint32(DefaultLifetime/time.Second) {
		t.Fatalf("gateway holds %d %v, want lifetime %v", l, ok, DefaultLifetime)
	}
	first := gw.last()
	m2, err := c.Map(testCtx(t))
	if err != nil || m2.External != want || m2.Restarted {
		t.Fatalf("renew: got %+v %v", m2, err)
	}
	if string(gw.last()[24:36]) != string(first[24:36]) {
		t.Error("renewal changed the nonce (RFC 6887 §11.2: same nonce renews)")
	}
	if got := binary.BigEndian.Uint16(gw.last()[42:]); got != 41000 {
		t.Errorf("renewal suggests port %d, want the granted 41000", got)
	}
	if err := c.Unmap(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := gw.mapped(40000); ok {
		t.Error("mapping still on the gateway after Unmap")
	}
}

// TestNATPMPFallback: a NAT-PMP-only gateway answers PCP with version 0;
// the client switches to NAT-PMP, maps and deletes.
func TestNATPMPFallback(t *testing.T) {
	gw := newFakePMP(t, false)
	c := pmpClient(t, gw.port(), netip.AddrPort{})
	m, err := c.Map(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	// Counted, not timed (a starved test process once took 2 s): a
	// client that ignored the version 0 answer sends PCP's whole
	// retransmit schedule (at 0, 0.25 and 0.75 s, giving up at pmpWait)
	// before it falls back; one that switches at once sends one request,
	// or two when its first read came late.
	gw.mu.Lock()
	pcpReqs := gw.pcpReqs
	gw.mu.Unlock()
	if pcpReqs >= 3 {
		t.Errorf("%d PCP requests before the fallback; the version 0 answer should switch at once", pcpReqs)
	}
	if want := netip.MustParseAddrPort("198.51.100.7:42000"); m.Proto != NATPMP || m.External != want || m.Lifetime != DefaultLifetime {
		t.Fatalf("got %+v, want nat-pmp %v", m, want)
	}
	if _, ok := gw.mapped(40000); !ok {
		t.Fatal("gateway holds no mapping")
	}
	if err := c.Unmap(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := gw.mapped(40000); ok {
		t.Error("mapping still on the gateway after Unmap")
	}
	if got := hex.EncodeToString(gw.last()); got != "000100009c400000"+"00000000" {
		t.Errorf("delete request %s, want external port 0 and lifetime 0 (RFC 6886 §3.4)", got)
	}
}

// TestGatewayRestart: after the gateway restarts (new epoch, mappings
// lost), the next renewal says so and the gateway holds the mapping again.
func TestGatewayRestart(t *testing.T) {
	for _, pcp := range []bool{true, false} {
		gw := newFakePMP(t, pcp)
		c := pmpClient(t, gw.port(), netip.AddrPort{})
		if _, err := c.Map(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		gw.restart()
		m, err := c.Map(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !m.Restarted {
			t.Errorf("pcp %v: restart not noticed: %+v", pcp, m)
		}
		if _, ok := gw.mapped(40000); !ok {
			t.Errorf("pcp %v: gateway holds no mapping after the renewal", pcp)
		}
		m, _ = c.Map(testCtx(t))
		if m.Restarted {
			t.Errorf("pcp %v: a second renewal reports a restart again", pcp)
		}
	}
}

// TestPMPBadInput: a gateway that answers wrongly ends in a clear error
// within the bounded wait, never a hang; malformed answers are counted.
func TestPMPBadInput(t *testing.T) {
	cases := []struct {
		name      string
		pcp       bool
		reply     func(req []byte) [][]byte
		want      string // in the error
		code      int    // a GatewayError's code (0: none)
		malformed bool
	}{
		{"no answer", true, func([]byte) [][]byte { return nil }, "no answer", 0, false},
		{"wrong nat-pmp version", false, func(req []byte) [][]byte {
			if req[0] == pcpVersion {
				return [][]byte{{0, 129, 0, 1, 0, 0, 0, 1}} // "speaks nat-pmp"
			}
			return [][]byte{{1, opReply | req[1], 0, 0, 0, 0, 0, 1, 198, 51, 100, 7}}
		}, "malformed", 0, true},
		{"nat-pmp error code", false, func(req []byte) [][]byte {
			if req[0] == pcpVersion {
				return [][]byte{{0, 129, 0, 1, 0, 0, 0, 1}}
			}
			return [][]byte{{0, opReply | req[1], 0, 2, 0, 0, 0, 1}}
		}, "not authorized", 2, false},
		{"pcp error code", true, func(req []byte) [][]byte {
			b := append([]byte(nil), req...)
			b[1], b[3] = opReply|opMapUDP, 8
			return [][]byte{b}
		}, "no resources", 8, false},
		{"garbage and truncated", true, func(req []byte) [][]byte {
			return [][]byte{[]byte("garbage garbage garbage garbage"), {2}, {2, 0x81, 0, 0}, make([]byte, 2000)}
		}, "malformed", 0, true},
		{"another request's nonce", true, func(req []byte) [][]byte {
			b := append([]byte(nil), req...)
			b[1] = opReply | opMapUDP
			b[24] ^= 0xff
			return [][]byte{b}
		}, "malformed", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw := newFakePMP(t, tc.pcp)
			gw.setReply(tc.reply)
			c := pmpClient(t, gw.port(), netip.AddrPort{})
			start := time.Now()
			m, err := c.Map(testCtx(t))
			took := time.Since(start)
			if err == nil {
				t.Fatalf("got %+v, want an error", m)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
			var ge *GatewayError
			if gotCode := errors.As(err, &ge); gotCode != (tc.code != 0) || (gotCode && ge.Code != tc.code) {
				t.Errorf("error %v: want gateway code %d", err, tc.code)
			}
			if tc.code == 0 && !errors.Is(err, ErrNoMapping) {
				t.Errorf("error %v: want ErrNoMapping", err)
			}
			if took > 2*pmpWait+ssdpWait {
				t.Errorf("took %v", took)
			}
			if got := c.Malformed.Load() > 0; got != tc.malformed {
				t.Errorf("malformed counted: %v, want %v", got, tc.malformed)
			}
		})
	}
}

// TestRenewFailure: when a renewal goes unanswered (the gateway was
// replaced by one with UPnP only), the client starts over and maps again.
func TestRenewFailure(t *testing.T) {
	gw := newFakePMP(t, true)
	igd := newFakeIGD(t)
	c := pmpClient(t, gw.port(), igd.ssdpAddr())
	if m, err := c.Map(testCtx(t)); err != nil || m.Proto != PCP {
		t.Fatalf("got %+v %v", m, err)
	}
	gw.setReply(func([]byte) [][]byte { return nil })
	m, err := c.Map(testCtx(t))
	if err != nil || m.Proto != UPnP || !m.Restarted {
		t.Fatalf("after a failed renewal: got %+v %v, want upnp, restarted", m, err)
	}
}

func TestParseRoutes(t *testing.T) {
	const table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"wan\t00000000\t0101A8C0\t0003\t0\t0\t20\t00000000\t0\t0\t0\n" +
		"lan\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"wwan\t00000000\t0100000A\t0003\t0\t0\t10\t00000000\t0\t0\t0\n"
	for _, c := range []struct {
		name, in string
		want     string
	}{
		{"lowest metric", table, "10.0.0.1"},
		{"no default", "Iface\tDestination\n lan\t0001000A\t00000000\t0001\t0\t0\t0\n", ""},
		{"garbage", "xx 00000000 zz 0003 0 0 0\n\x00\x01", ""},
		{"default without gateway flag", "wan\t00000000\t0101A8C0\t0001\t0\t0\t0\n", ""},
	} {
		got, err := parseRoutes(strings.NewReader(c.in))
		if c.want == "" {
			if !errors.Is(err, ErrNoGateway) {
				t.Errorf("%s: got %v %v, want ErrNoGateway", c.name, got, err)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("%s: got %v %v, want %s", c.name, got, err, c.want)
		}
	}
}

func FuzzParsePCPMap(f *testing.F) {
	f.Add(appendPCPMap(nil, loop, [12]byte{}, 1, 2, 3))
	f.Add([]byte{0, 129, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		parsePCPMap(b)
		parsePMP(b, opAddress)
		parsePMP(b, opMapUDP)
	})
}
