package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
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
		noteSkip("NAT lab: " + strings.TrimPrefix(why, "the NAT lab "))
		if os.Getenv("CI") == "true" {
			fmt.Println("FAIL: CI=true and the NAT lab cannot run: CI must run it (run .ci/run as root)")
			os.Exit(1)
		}
		os.Exit(0)
	}
	reapOrphans()
	// An interrupted run removes its namespaces on the way out; a run
	// killed harder (or by the -timeout panic) leaves them for the next
	// run's reapOrphans.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		Down(runPrefix())
		fmt.Printf("lab: %v: namespaces removed\n", s)
		os.Exit(1)
	}()
	dir, err := os.MkdirTemp("", "pinhole-lab-")
	if err != nil {
		panic(err)
	}
	bins.dir = dir
	bins.probe = filepath.Join(dir, "probe")
	bins.pinhole = filepath.Join(dir, "pinhole")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for out, pkg := range map[string]string{bins.probe: "./cmd/probe", bins.pinhole: "../cmd/pinhole"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
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
// Its background processes end with the test, or after 5 minutes.
func up(t testing.TB, sites map[string]Site) *Lab {
	t.Helper()
	prefix := fmt.Sprintf("%s%02d-", runPrefix(), seq.Add(1)%100)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Up(ctx, prefix, sites)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

var seq atomic.Int32 // numbers the labs of this run

// labDir is a temporary directory for l's processes to write in. It is
// removed only after they have exited: the test's context is cancelled
// before its cleanups run, but the processes it kills may still be writing
// while t.TempDir's removal runs ("directory not empty", seen in CI).
func labDir(t testing.TB, l *Lab) string {
	dir := t.TempDir()
	t.Cleanup(l.StopProcs) // runs before the removal registered by TempDir
	return dir
}

// testCtx bounds the life of a test's lab processes.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Test namespaces are named phl<pid>-<seq>-<host>, so a run can tell its
// own from those of a dead run.
const testPrefix = "phl"

func runPrefix() string { return fmt.Sprintf("%s%d-", testPrefix, os.Getpid()) }

// reapOrphans removes the namespaces of test runs that are no longer
// running (a run killed by SIGKILL or by go test's -timeout cannot clean
// up after itself). Runs still alive keep theirs.
func reapOrphans() {
	for _, ns := range Namespaces(testPrefix) {
		pid, _, ok := strings.Cut(strings.TrimPrefix(ns, testPrefix), "-")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(pid); err == nil && syscall.Kill(n, 0) == syscall.ESRCH {
			Down(testPrefix + pid + "-")
		}
	}
}

// probeServers are the responder's three sockets: two ports on the relay's
// first address and one on its second (RFC 5780 needs both changes).
var probeServers = []string{RelayIP + ":3478", RelayIP + ":3479", RelayIP2 + ":3478"}

func startResponder(t *testing.T, l *Lab) {
	t.Helper()
	if _, err := l.Start(testCtx(t), "relay", append([]string{bins.probe, "serve"}, probeServers...)...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
}

// probe runs the probe client in host and decodes its JSON report (the
// last line it prints).
func probe(t *testing.T, l *Lab, host string, v any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := l.Run(ctx, host, append([]string{bins.probe}, args...)...)
	if err != nil {
		t.Fatalf("probe %v in %s: %v", args, host, err)
	}
	// A probe may print progress lines first; the report is the last.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		t.Fatalf("probe %v: %v in %q", args, err, out)
	}
}
