package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pinhole/pinhole/protocol/secure"
)

// placeholderConfig is the package's default agent.yaml shape: the relay
// key is still a placeholder, which must not stop key creation.
const placeholderConfig = "name: openwrt\nprivate_key_file: keys/agent.key\nrelays:\n  - address: relay.example.net:7700\n    public_key: REPLACE-WITH-THE-RELAY-PUBLIC-KEY\n"

// TestKeygenCreatesMissingAgentKey: `keygen -c` creates the config's key
// file once (mode 600, a valid key), prints its public key once, and
// leaves an existing key alone; `pubkey -c` prints the same public key.
func TestKeygenCreatesMissingAgentKey(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.yaml")
	os.WriteFile(conf, []byte(placeholderConfig), 0o600)
	os.Mkdir(filepath.Join(dir, "keys"), 0o700)
	keyFile := filepath.Join(dir, "keys", "agent.key")

	code, out, errOut := run(t, "", "keygen", "-c", conf)
	if code != 0 {
		t.Fatalf("keygen -c: exit %d, %q", code, errOut)
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("no key file: %v", err)
	}
	k, err := secure.ParsePrivateKey(string(b))
	if err != nil {
		t.Fatalf("key file holds %q: %v", b, err)
	}
	if st, _ := os.Stat(keyFile); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 600", st.Mode().Perm())
	}
	if !strings.Contains(out, "created the agent key "+keyFile) || !strings.Contains(out, k.Public().String()) {
		t.Errorf("keygen -c printed %q; want the file and public key %s", out, k.Public())
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "keys")); len(ents) != 1 {
		t.Errorf("keys/ holds %d files, want only agent.key (temp file left?)", len(ents))
	}

	code, out, _ = run(t, "", "keygen", "-c", conf)
	if b2, _ := os.ReadFile(keyFile); code != 0 || out != "" || string(b2) != string(b) {
		t.Fatalf("second keygen -c: exit %d, printed %q, key changed %v; want a silent no-op", code, out, string(b2) != string(b))
	}
	code, out, errOut = run(t, "", "pubkey", "-c", conf)
	if code != 0 || strings.TrimSpace(out) != k.Public().String() {
		t.Fatalf("pubkey -c: exit %d, %q %q; want %s", code, out, errOut, k.Public())
	}
}

// TestKeygenCannotWrite: a key that cannot be written (here its directory
// is missing; a full or read-only overlay is tested under the real procd
// by build/procd-test.sh) is a clear error naming the file, exit 1.
func TestKeygenCannotWrite(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.yaml")
	os.WriteFile(conf, []byte(placeholderConfig), 0o600)
	code, _, errOut := run(t, "", "keygen", "-c", conf)
	if code != 1 || !strings.Contains(errOut, "cannot create the agent key "+filepath.Join(dir, "keys", "agent.key")) {
		t.Fatalf("keygen -c into a missing dir: exit %d, %q", code, errOut)
	}
}

// TestPubkeyWithoutKey: `pubkey -c` on a config whose key file is missing
// says so with file:line.
func TestPubkeyWithoutKey(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(conf, []byte(placeholderConfig), 0o600)
	code, _, errOut := run(t, "", "pubkey", "-c", conf)
	if code != 1 || !strings.Contains(errOut, conf+":2: private_key_file:") || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("pubkey -c without key: exit %d, %q", code, errOut)
	}
}
