package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mappedWAN is an extra address on the UPnP gateway's WAN side, given to
// miniupnpd as its ext_ip: it refuses to map on an address of its
// reserved list (2.3.1 getifaddr.c addr_is_reserved, which includes RFC
// 5737's 203.0.113.0/24, the lab's public segment). 192.0.3.0/24 is
// outside that list; the lab has no route out, so it never leaves the
// machine. miniupnpd's redirects match the port on the WAN interface,
// not the address, so the gateway's own address works as well.
const mappedWAN = "192.0.3.101"

// miniupnpdTables are the chains miniupnpd 2.3.1's nftables backend adds
// its rules to (its defaults: table inet filter; it does not create them,
// Debian's nft_init.sh would). They sit just before the lab's own nat and
// filter chains of the same hooks, in a table of their own: the lab's
// table ip lab is untouched, and a packet miniupnpd redirects is already
// NATed when the lab's chains see it.
const miniupnpdTables = `table inet filter {
	chain forward { type filter hook forward priority filter - 5; policy accept; jump miniupnpd; }
	chain miniupnpd { }
	chain prerouting { type nat hook prerouting priority dstnat - 5; policy accept; jump prerouting_miniupnpd; }
	chain prerouting_miniupnpd { }
	chain postrouting { type nat hook postrouting priority srcnat - 5; policy accept; jump postrouting_miniupnpd; }
	chain postrouting_miniupnpd { }
}
`

// startMiniupnpd runs Debian's miniupnpd (nftables backend) on site a's
// gateway: UPnP IGD on the LAN, and NAT-PMP/PCP when pmp is set.
func startMiniupnpd(t *testing.T, l *Lab, pmp bool) *Proc {
	t.Helper()
	bin, err := exec.LookPath("miniupnpd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("miniupnpd not installed, and CI=true: CI must install it (.ci/apt-packages)")
		}
		t.Skip("SKIP: miniupnpd not installed (apt-get install miniupnpd-nftables)")
	}
	ctx := testCtx(t)
	nft := func(rules string) {
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS("gwa"), "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(rules)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft: %v: %s", err, out)
		}
	}
	nft(miniupnpdTables)
	// The lab's gateway drops everything addressed to itself; let in
	// SSDP, NAT-PMP/PCP and miniupnpd's HTTP port from the LAN (insert:
	// before that drop).
	nft(`insert rule ip lab input iifname "lan" udp dport { 1900, 5351 } accept
insert rule ip lab input iifname "lan" tcp dport 5000 accept
`)
	for _, c := range [][]string{{"gwa", "ip", "addr", "add", mappedWAN + "/32", "dev", "wan"}, {"client", "ip", "route", "add", mappedWAN + "/32", "dev", "eth0"}} {
		if _, err := l.Run(ctx, c[0], c[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "miniupnpd.conf")
	natpmp := "no"
	if pmp {
		natpmp = "yes"
	}
	os.WriteFile(conf, fmt.Appendf(nil, `ext_ifname=wan
ext_ip=%s
listening_ip=lan
port=5000
enable_upnp=yes
enable_natpmp=%s
secure_mode=yes
system_uptime=no
min_lifetime=120
uuid=7c2b51f0-4a1e-4d7e-9c3a-5f1d2e3a4b5c
allow 1024-65535 10.0.1.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`, mappedWAN, natpmp), 0o644)
	p, err := l.Start(ctx, "gwa", bin, "-f", conf, "-d", "-P", filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("miniupnpd log:\n%s", tail(p.Output()))
		}
	})
	// Ready when it listens on its HTTP port.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if out, _ := l.Run(ctx, "gwa", "ss", "-Hltn", "sport = :5000"); strings.Contains(out, "5000") {
			return p
		}
	}
	t.Fatalf("miniupnpd did not start:\n%s", p.Output())
	return nil
}

// redirects lists miniupnpd's DNAT rules on the gateway.
func redirects(t *testing.T, l *Lab) string {
	out, err := l.Run(testCtx(t), "gwa", "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd")
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "dnat") {
			rules = append(rules, strings.TrimSpace(line))
		}
	}
	return strings.Join(rules, "\n")
}

// TestPortMappingMiniupnpd runs the real agent behind a port-restricted
// gateway running Debian's miniupnpd: the agent maps its UDP port (PCP
// when NAT-PMP/PCP is on: miniupnpd answers PCP first; UPnP IGD when it
// is off), `pinhole status` shows the mapped address, a datagram from the
// internet client to that address reaches the agent's socket (which a
// port-restricted NAT would drop without the mapping), and the mapping is
// gone from the gateway after the agent stops. `pinhole nat` on the same
// host reports the protocol and deletes its own trial mapping.
//
// NAT-PMP itself is not reachable this way: miniupnpd's one switch turns
// on NAT-PMP and PCP together, and the agent only falls back to NAT-PMP
// when a gateway answers PCP in NAT-PMP's version 0; package portmap's
// tests cover it against a NAT-PMP-only fake.
func TestPortMappingMiniupnpd(t *testing.T) {
	for _, c := range []struct {
		name  string
		pmp   bool
		proto string
	}{{"pcp", true, "pcp"}, {"upnp", false, "upnp-igd"}} {
		t.Run(c.name, func(t *testing.T) {
			l := up(t, map[string]Site{"a": {Behaviour: PortRestricted}})
			startMiniupnpd(t, l, c.pmp)
			d, err := Deploy(testCtx(t), l, Binaries{Pinhole: bins.pinhole, Probe: bins.probe}, labDir(t, l), "2s", "a1")
			if err != nil {
				t.Fatal(err)
			}
			agent := d.Agents["a1"]
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("agent log:\n%s", tail(agent.Output()))
				}
			})
			var pm map[string]any
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && pm == nil; time.Sleep(200 * time.Millisecond) {
				if st, err := d.Status("a1"); err == nil {
					pm, _ = st["port_mapping"].(map[string]any)
				}
			}
			if pm == nil {
				t.Fatal("pinhole status shows no port mapping after 20 s")
			}
			addr, _ := pm["address"].(string)
			t.Logf("mapped: %v; gateway rules:\n%s", pm, redirects(t, l))
			if pm["protocol"] != c.proto || !strings.HasPrefix(addr, mappedWAN+":") {
				t.Fatalf("port mapping %v, want %s on %s", pm, c.proto, mappedWAN)
			}
			st, _ := d.Status("a1")
			sock, _ := st["udp_socket"].(string)
			sockPort := sock[strings.LastIndexByte(sock, ':')+1:]
			if !strings.Contains(redirects(t, l), "dnat ip to "+l.HostIP("a1")+":"+sockPort) {
				t.Errorf("gateway has no redirect to the agent's socket port %s", sockPort)
			}

			// A datagram from the internet to the mapped address reaches
			// the agent's socket: not a pinhole datagram, so it counts
			// as malformed there.
			malformed := func() float64 {
				st, err := d.Status("a1")
				if err != nil {
					t.Fatal(err)
				}
				n, _ := st["counters"].(map[string]any)["datagrams_malformed"].(float64)
				return n
			}
			before := malformed()
			if _, err := l.Run(testCtx(t), "client", bins.probe, "send", addr, "~from the internet"); err != nil {
				t.Fatal(err)
			}
			if got := malformed() - before; got < 1 {
				t.Errorf("datagrams from the client to %s reached the agent %v times, want at least 1 of 3", addr, got)
			}

			// pinhole nat reports the protocol and removes its own trial.
			out, err := l.Run(testCtx(t), "a1", bins.pinhole, "nat", "--relay", RelayAddr)
			if err != nil {
				t.Fatalf("pinhole nat: %v", err)
			}
			if want := "port mapping:    " + c.proto + " " + mappedWAN + ":"; !strings.Contains(out, want) {
				t.Errorf("pinhole nat printed\n%s\nwant a line starting %q", out, want)
			}
			if n := strings.Count(redirects(t, l), "dnat"); n != 1 {
				t.Errorf("after pinhole nat the gateway holds %d redirects, want the agent's only:\n%s", n, redirects(t, l))
			}

			// A clean stop deletes the mapping.
			if err := agent.Stop(); err != nil {
				t.Logf("agent exit: %v", err)
			}
			if r := redirects(t, l); r != "" {
				t.Errorf("after the agent stopped the gateway still redirects:\n%s", r)
			}
			if !strings.Contains(agent.Output(), "port mapping deleted") {
				t.Errorf("agent did not log the delete")
			}
		})
	}
}
