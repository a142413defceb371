package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCrossBuiltAgentUnderQemu runs the agent built for the router CPUs
// (MIPS little-endian softfloat, ARMv7) under qemu-user on a site host
// behind a port-restricted NAT, serving an exposure end to end.
func TestCrossBuiltAgentUnderQemu(t *testing.T) {
	targets := []struct {
		name, qemu string
		env        []string
	}{
		{"mipsle", "qemu-mipsel-static", []string{"GOARCH=mipsle", "GOMIPS=softfloat"}},
		{"armv7", "qemu-arm-static", []string{"GOARCH=arm", "GOARM=7"}},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			qemu, err := exec.LookPath(tg.qemu)
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s not installed (apt-get install qemu-user-static)", tg.qemu)
				}
				t.Skipf("SKIP: %s not installed (apt-get install qemu-user-static)", tg.qemu)
			}
			bin := filepath.Join(bins.dir, "pinhole-"+tg.name)
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../cmd/pinhole")
			cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux"), tg.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("cross build: %v\n%s", err, out)
			}
			l := up(t, map[string]Site{"a": {Behaviour: PortRestricted}})
			tu := startTunnel(t, l, "a1", tunnelOpts{agentCmd: []string{qemu, bin}})
			r := tu.tcpCheck(t, 1<<20)
			u := tu.udpCheck(t, 200)
			t.Logf("%s agent under %s: connected after %v, tcp 1 MiB intact=%v (%.1f Mbit/s), udp %d/%d",
				tg.name, tg.qemu, tu.connectedAfter.Round(1e6), r.Intact, r.Mbps, u.Received, u.Sent)
			if !r.Intact || u.Received < u.Sent*99/100 || u.Corrupt > 0 {
				t.Fatalf("%s agent: tcp intact=%v (%s), udp %d/%d corrupt %d", tg.name, r.Intact, r.Error, u.Received, u.Sent, u.Corrupt)
			}
		})
	}
}
