package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// bins holds the binaries the lab tests run inside namespaces.
var bins struct {
	dir, probe, pinhole string
}

func TestMain(m *testing.M) {
	if why := Available(); why != "" {
		fmt.Printf("SKIP: %s; the NAT lab tests did not run\n", why)
		if os.Getenv("CI") == "true" {
			fmt.Println("FAIL: CI=true and the NAT lab cannot run: CI must run it (run .ci/run as root)")
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "pinhole-lab-")
	if err != nil {
		panic(err)
	}
	bins.dir = dir
	bins.probe = filepath.Join(dir, "probe")
	bins.pinhole = filepath.Join(dir, "pinhole")
	for out, pkg := range map[string]string{bins.probe: "./cmd/probe", bins.pinhole: "../cmd/pinhole"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Printf("build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// up builds a topology for one test and removes it when the test ends.
func up(t *testing.T, sites map[string]Site) *Lab {
	t.Helper()
	prefix := fmt.Sprintf("pht%d%02d-", os.Getpid()%10000, testSeq())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Up(ctx, prefix, sites)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

var seq int

func testSeq() int { seq++; return seq % 100 }

// probeServers are the responder's three sockets: two ports on the relay's
// first address and one on its second (RFC 5780 needs both changes).
var probeServers = []string{RelayIP + ":3478", RelayIP + ":3479", RelayIP2 + ":3478"}

func startResponder(t *testing.T, l *Lab) {
	t.Helper()
	if _, err := l.Start("relay", append([]string{bins.probe, "serve"}, probeServers...)...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
}

// probe runs the probe client in host and decodes its JSON report.
func probe(t *testing.T, l *Lab, host string, v any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := l.Run(ctx, host, append([]string{bins.probe}, args...)...)
	if err != nil {
		t.Fatalf("probe %v in %s: %v", args, host, err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("probe %v: %v in %q", args, err, out)
	}
}
