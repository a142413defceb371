package config

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current output")

// badConfigs names every file in testdata/bad and what it proves. Each
// NAME.yaml has a NAME.golden with the exact error text: every problem at
// its line, all at once, in file order.
var badConfigs = []struct{ name, covers string }{
	{"typo", "unknown fields (top level, in a list item, a case typo, a flow mapping) at their lines, with suggestions"},
	{"address", "bad relay and local addresses: spaces, extra colons, bare IPv6, service names, missing port or host"},
	{"ports", "port 0 and 70000 in addresses, remote_port and listen_port; a named port"},
	{"dup-name", "duplicate exposure name"},
	{"dup-port", "duplicate remote_port per protocol (tcp twice is refused, tcp and udp is fine)"},
	{"key-unreadable", "private_key_file that does not exist"},
	{"key-dir", "private_key_file that is a directory"},
	{"key-file-length", "private_key_file holding a key of the wrong length"},
	{"key-length", "inline keys of the wrong length or not base64"},
	{"both-keys", "private_key and private_key_file both given"},
	{"own-key", "the agent's own public key given as the relay's"},
	{"missing", "missing required fields: name, key, relays, exposure name, local, remote_port"},
	{"missing-relay-fields", "relays without address or public_key"},
	{"relays-empty", "an empty relays list"},
	{"proxy-udp", "proxy_protocol on udp; idle_timeout and max_flows on tcp"},
	{"duration", "durations without unit, with spaces, negative, below minimum"},
	{"duration-range", "durations out of range"},
	{"enums", "bad enum words everywhere, with suggestions; a bad name"},
	{"kcp", "kcp limits and FEC shards given alone"},
	{"admin-memory", "admin not on loopback; memory_limit without unit"},
	{"admin-name", "admin as a host name; memory_limit not a size; a field of another section"},
	{"shape", "a list where a value belongs, a mapping where a list belongs, a field given twice"},
	{"syntax", "broken YAML at its line"},
	{"two-docs", "a second YAML document"},
	{"empty", "an empty file"},
	{"list", "a top level that is not a mapping"},
}

func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if !slices.ContainsFunc(badConfigs, func(c struct{ name, covers string }) bool { return c.name == name }) {
			t.Errorf("%s is not in the badConfigs table", f)
		}
	}
	for _, c := range badConfigs {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join("testdata", "bad", c.name+".yaml")
			a, err := Load(f)
			if err == nil {
				t.Fatalf("%s (%s) accepted: %+v", f, c.covers, a)
			}
			got := err.Error() + "\n"
			golden := filepath.Join("testdata", "bad", c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("%v (go test -update writes it)", rerr)
			}
			if got != string(want) {
				t.Errorf("%s: errors differ from %s\n--- got\n%s--- want\n%s", c.covers, golden, got, want)
			}
			for line := range strings.Lines(got) {
				if !strings.HasPrefix(line, f+":") {
					t.Errorf("error line %q does not start with %q", line, f+":")
				}
			}
		})
	}
}
