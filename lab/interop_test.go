package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// coturnVerdicts extracts turnutils_natdiscovery's two conclusions.
var coturnVerdicts = regexp.MustCompile(`NAT with [A-Za-z ]+(Mapping|Filtering)!`)

// TestNATInteropCoturn checks NAT discovery against coturn, Debian's STUN
// server, both ways, behind several behaviours: coturn's client
// (turnutils_natdiscovery -m -f) concludes the same against `pinhole relay`
// as against coturn's own turnserver, and `pinhole nat` run against
// turnserver classifies the NAT as the lab built it.
func TestNATInteropCoturn(t *testing.T) {
	discovery, err := exec.LookPath("turnutils_natdiscovery")
	server, serr := exec.LookPath("turnserver")
	if err != nil || serr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("coturn not installed, and CI=true: CI must install it (.ci/apt-packages)")
		}
		t.Skip("SKIP: coturn not installed (apt-get install coturn)")
	}
	cases := []struct {
		b                  Behaviour
		mapping, filtering string
		natType            string
	}{
		{FullCone, "endpoint-independent", "endpoint-independent", "full cone"},
		{RestrictedCone, "endpoint-independent", "address-dependent", "restricted cone"},
		{PortRestricted, "endpoint-independent", "address-and-port-dependent", "port-restricted cone"},
		{Symmetric, "address-and-port-dependent", "address-and-port-dependent", "symmetric"},
	}
	for _, c := range cases {
		t.Run(c.b.String(), func(t *testing.T) {
			l := up(t, map[string]Site{"a": {Behaviour: c.b}})
			if _, err := Deploy(testCtx(t), l, Binaries{Pinhole: bins.pinhole, Probe: bins.probe}, labDir(t, l), "2s"); err != nil {
				t.Fatal(err)
			}
			// turnserver on the relay host: both addresses, ports 3478
			// and 3479 (pinhole's relay is on 7700 and 7710).
			dir := t.TempDir()
			ts, err := l.Start(testCtx(t), "relay", server, "-n", "--stun-only", "--no-auth", "--no-tcp", "--no-tls", "--no-dtls",
				"--no-cli", "-m", "0", "-L", RelayIP, "-L", RelayIP2, "-E", RelayIP, "--listening-port", "3478",
				"--alt-listening-port", "3479", "--log-file", "stdout", "--simple-log",
				"--pidfile", filepath.Join(dir, "pid"), "--db", filepath.Join(dir, "db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ts.Stop() })
			time.Sleep(time.Second) // turnserver binds its sockets

			verdicts := func(port string) []string {
				out, _ := l.Run(testCtx(t), "a1", discovery, "-m", "-f", "-p", port, RelayIP)
				v := coturnVerdicts.FindAllString(out, -1)
				if len(v) != 2 {
					t.Fatalf("natdiscovery against port %s concluded %q:\n%s", port, v, out)
				}
				return v
			}
			vsCoturn, vsPinhole := verdicts("3478"), verdicts("7700")
			t.Logf("%s: natdiscovery vs turnserver %q, vs pinhole relay %q", c.b, vsCoturn, vsPinhole)
			if strings.Join(vsCoturn, "|") != strings.Join(vsPinhole, "|") {
				t.Errorf("coturn's client classifies differently: against turnserver %q, against pinhole relay %q", vsCoturn, vsPinhole)
			}

			out, err := l.Run(testCtx(t), "a1", bins.pinhole, "nat", "--relay", RelayIP+":3478")
			if err != nil {
				t.Fatalf("pinhole nat against turnserver: %v", err)
			}
			for _, want := range []string{"mapping:         " + c.mapping, "filtering:       " + c.filtering, "nat type:        " + c.natType} {
				if !strings.Contains(out, want+"\n") {
					t.Errorf("pinhole nat against turnserver: want %q in\n%s", want, out)
				}
			}
		})
	}
}
