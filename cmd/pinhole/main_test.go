package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol/secure"
)

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = dispatch(args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

func TestKeygenPubkey(t *testing.T) {
	code, key, _ := run(t, "", "keygen")
	if code != 0 {
		t.Fatalf("keygen exit %d", code)
	}
	k, err := secure.ParsePrivateKey(key)
	if err != nil {
		t.Fatalf("keygen printed %q: %v", key, err)
	}
	code, pub, _ := run(t, key, "pubkey")
	if code != 0 || strings.TrimSpace(pub) != k.Public().String() {
		t.Fatalf("pubkey: exit %d, printed %q, want %s", code, pub, k.Public())
	}
	if code, _, errOut := run(t, "not a key", "pubkey"); code == 0 || !strings.Contains(errOut, "base64") {
		t.Fatalf("pubkey of garbage: exit %d, stderr %q", code, errOut)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	k, _ := secure.GeneratePrivateKey()
	good := filepath.Join(dir, "agent.yaml")
	os.WriteFile(good, []byte("name: r1\nprivate_key: "+k.String()+"\nrelays:\n  - address: 203.0.113.1\n    public_key: "+k.Public().String()+"\n"), 0o644)
	code, out, _ := run(t, "", "check", "-c", good)
	if code != 0 || !strings.Contains(out, `ok (agent "r1", 1 relays, 0 exposures)`) {
		t.Fatalf("check good: exit %d, %q", code, out)
	}
	bad := filepath.Join(dir, "relay.yaml")
	os.WriteFile(bad, []byte("listen: 0.0.0.0:7700\nprivate_key: "+k.String()+"\nagents:\n  - name: a\n    public_key: "+k.Public().String()+"\n    allow_ports: [\"90-80\"]\n"), 0o644)
	code, _, errOut := run(t, "", "check", "-c", bad)
	if code != 1 || !strings.Contains(errOut, bad+":6: agents[0].allow_ports[0]:") {
		t.Fatalf("check bad: exit %d, stderr %q; want file:line: field", code, errOut)
	}
	for _, sub := range []string{"relay", "agent", "check", "keygen", "pubkey", "version", "status"} {
		if code, _, errOut := run(t, "", sub, "--help"); code != 0 || !strings.Contains(errOut, "usage: pinhole "+sub) {
			t.Errorf("%s --help: exit %d, %q", sub, code, errOut)
		}
	}
}

// TestAgentRefusesBadConfigBeforeNetwork: a bad config stops the agent with
// the file:line error and exit code 1 (procd ignores the code; the init
// script runs `pinhole check` first so that procd starts nothing to respawn).
func TestAgentRefusesBadConfigBeforeNetwork(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(p, []byte("name: r1\nrelays: []\nexpose:\n  - name: x\n    remote_port: 99999\n"), 0o644)
	code, _, errOut := run(t, "", "agent", "-c", p)
	if code != 1 || !strings.Contains(errOut, p+":5: expose[0].remote_port: 99999 is out of range") {
		t.Fatalf("agent with bad config: exit %d, stderr %q", code, errOut)
	}
}

// TestCheckRefusesDevZero runs the real binary: `pinhole check -c
// /dev/zero` used to read until memory ran out (3.6 GB); it must stop at
// once with the file name and what is wrong.
func TestCheckRefusesDevZero(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pinhole")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// The timeout only stops a regression from hanging the test run.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "check", "-c", "/dev/zero")
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || ctx.Err() != nil {
		t.Fatalf("check -c /dev/zero: %v (context %v), want exit 1", err, ctx.Err())
	}
	if want := "/dev/zero: not a regular file (a character device)"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr.String(), want)
	}
	big := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(big, nil, 0o644)
	os.Truncate(big, 50<<20)
	if code, _, errOut := run(t, "", "agent", "-c", big); code != 1 || !strings.Contains(errOut, big+": 52428800 bytes, larger than the 1 MiB limit") {
		t.Errorf("agent with a 50 MB config: exit %d, stderr %q", code, errOut)
	}
}
