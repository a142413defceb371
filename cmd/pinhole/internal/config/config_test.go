package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

var update = flag.Bool("update", false, "rewrite the .golden files from the current output")

// TestBadConfigs loads every file in testdata/bad and compares the full
// error text with its .golden file: each problem at its line, all at once.
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test configs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var err error
			if strings.HasPrefix(filepath.Base(f), "relay") {
				_, err = LoadRelay(f)
			} else {
				_, err = LoadAgent(f)
			}
			if err == nil {
				t.Fatal("bad config accepted")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("%v (run go test -update to create it)", rerr)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestExamples loads the commented examples in configs/, with key files
// made for the test, so the documentation cannot rot.
func TestExamples(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"agent.yaml", "relay.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "configs", name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	for _, k := range []string{"agent.key", "relay.key"} {
		key, _ := secure.GeneratePrivateKey()
		os.WriteFile(filepath.Join(dir, k), []byte(key.String()+"\n"), 0o600)
	}
	a, err := LoadAgent(filepath.Join(dir, "agent.yaml"))
	if err != nil {
		t.Fatalf("configs/agent.yaml: %v", err)
	}
	if a.Agent.Name != "home-router" || len(a.Agent.Relays) != 1 || len(a.Agent.Expose) != 4 ||
		a.Agent.Relays[0].Address != "relay.example.net:7700" || a.MemoryLimit != 14<<20 {
		t.Errorf("agent example read as %+v", a.Agent)
	}
	if e := a.Agent.Expose[2]; e.Proto != protocol.ProtoUDP || e.RemotePort != 5353 || e.MaxFlows != 256 {
		t.Errorf("dns exposure read as %+v", e)
	}
	if e := a.Agent.Expose[3]; e.RemotePort != 0 || len(e.Peers) != 1 || e.Peers[0] != "office-gw" {
		t.Errorf("peer-only exposure read as %+v", e)
	}
	if c := a.Agent.Connect; len(c) != 1 || c[0].Peer != "office-gw" || c[0].Service != "ssh" || c[0].Listen != "127.0.0.1:2222" || !c[0].PublicKey.IsZero() {
		t.Errorf("connect read as %+v", c)
	}
	r, err := LoadRelay(filepath.Join(dir, "relay.yaml"))
	if err != nil {
		t.Fatalf("configs/relay.yaml: %v", err)
	}
	if r.MemoryLimit != 0 {
		t.Errorf("relay example memory_limit read as %d, want 0 (off)", r.MemoryLimit)
	}
	home := r.Relay.Agents[0]
	checks := []struct {
		proto protocol.Proto
		port  uint16
		want  bool
	}{
		{protocol.ProtoTCP, 8080, true}, {protocol.ProtoUDP, 8080, false}, {protocol.ProtoUDP, 5353, true},
		{protocol.ProtoTCP, 9050, true}, {protocol.ProtoUDP, 9100, true}, {protocol.ProtoTCP, 9101, false},
	}
	for _, c := range checks {
		if got := home.Allows(c.proto, c.port); got != c.want {
			t.Errorf("home-router allows %v %d = %v, want %v", c.proto, c.port, got, c.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	k, _ := secure.GeneratePrivateKey()
	f, err := ParseAgent("a.yaml", []byte("name: r\nprivate_key: "+k.String()+"\nrelays:\n  - address: relay.example\n    public_key: "+k.Public().String()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Agent
	if c.Relays[0].Address != "relay.example:7700" || c.Transport != "auto" || c.Heartbeat != 0 || c.HeartbeatMin != 5*time.Second ||
		c.HeartbeatMax != 5*time.Minute || c.Admin != "127.0.0.1:7702" || !c.PortMapping {
		t.Errorf("defaults: got %+v", c)
	}
}

// TestHeartbeatSetting: auto or a duration, with its bounds.
func TestHeartbeatSetting(t *testing.T) {
	k, _ := secure.GeneratePrivateKey()
	base := "name: r\nprivate_key: " + k.String() + "\nrelays:\n  - address: relay.example\n    public_key: " + k.Public().String() + "\n"
	for _, c := range []struct {
		yaml         string
		hb, min, max time.Duration
	}{
		{"heartbeat: auto\n", 0, 5 * time.Second, 5 * time.Minute},
		{"heartbeat: 25s\n", 25 * time.Second, 5 * time.Second, 5 * time.Minute},
		{"heartbeat: auto\nheartbeat_min: 8s\nheartbeat_max: 2m\n", 0, 8 * time.Second, 2 * time.Minute},
	} {
		f, err := ParseAgent("a.yaml", []byte(base+c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if a := f.Agent; a.Heartbeat != c.hb || a.HeartbeatMin != c.min || a.HeartbeatMax != c.max {
			t.Errorf("%q: got %v %v %v, want %v %v %v", c.yaml, a.Heartbeat, a.HeartbeatMin, a.HeartbeatMax, c.hb, c.min, c.max)
		}
	}
}

// FuzzParseAgent: no input may panic the parser.
func FuzzParseAgent(f *testing.F) {
	for _, p := range []string{"testdata/bad/agent-typo.yaml", "testdata/bad/agent-ports.yaml", "../../../../configs/agent.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { ParseAgent("fuzz.yaml", b) })
}

// FuzzParseRelay: no input may panic the parser.
func FuzzParseRelay(f *testing.F) {
	for _, p := range []string{"testdata/bad/relay-bad.yaml", "../../../../configs/relay.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { ParseRelay("fuzz.yaml", b) })
}

// TestConfigFileBounds: files too large are refused by their size before a
// byte is read, and the 1 MiB limit itself is accepted.
func TestConfigFileBounds(t *testing.T) {
	dir := t.TempDir()
	sized := func(name string, size int64) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(size) // sparse: no disk is spent on the 50 MB case
		f.Close()
		return p
	}
	big := sized("agent.yaml", 50<<20)
	_, err := LoadAgent(big)
	if want := big + ": 52428800 bytes, larger than the 1 MiB limit for a config file"; err == nil || err.Error() != want {
		t.Errorf("50 MB agent.yaml: got %v, want %q", err, want)
	}
	_, err = LoadRelay(big)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("50 MB relay.yaml: got %v, want ErrTooLarge", err)
	}
	if _, err := ReadFile(sized("limit.yaml", maxConfigFile)); err != nil {
		t.Errorf("a file of exactly 1 MiB: got %v, want it read", err)
	}
	if _, err := ReadFile(sized("over.yaml", maxConfigFile+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a file of 1 MiB + 1: got %v, want ErrTooLarge", err)
	}
	if _, err := LoadAgent("/dev/null"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("/dev/null: got %v, want ErrNotRegular", err)
	}
}

// TestRelayMemoryLimit: off by default, a size when given (GOMEMLIMIT's
// precedence is cmd/pinhole's, see setMemoryLimit).
func TestRelayMemoryLimit(t *testing.T) {
	k, _ := secure.GeneratePrivateKey()
	base := "private_key: " + k.String() + "\n"
	for _, c := range []struct {
		yaml string
		want int64
	}{{"", 0}, {"memory_limit: 512MiB\n", 512 << 20}, {"memory_limit: off\n", 0}} {
		f, err := ParseRelay("relay.yaml", []byte(base+c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if f.MemoryLimit != c.want {
			t.Errorf("%q: memory limit %d, want %d", c.yaml, f.MemoryLimit, c.want)
		}
	}
	if _, err := ParseRelay("relay.yaml", []byte(base+"memory_limit: lots\n")); err == nil || !strings.Contains(err.Error(), "relay.yaml:2: memory_limit: \"lots\" is not a size") {
		t.Errorf("bad memory_limit: got %v", err)
	}
}

// TestPortMappingSetting: auto (the default) or off.
func TestPortMappingSetting(t *testing.T) {
	k, _ := secure.GeneratePrivateKey()
	base := "name: r\nprivate_key: " + k.String() + "\nrelays:\n  - address: relay.example\n    public_key: " + k.Public().String() + "\n"
	for _, c := range []struct {
		yaml string
		want bool
	}{{"", true}, {"port_mapping: auto\n", true}, {"port_mapping: off\n", false}} {
		f, err := ParseAgent("a.yaml", []byte(base+c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if f.Agent.PortMapping != c.want {
			t.Errorf("%q: got %v, want %v", c.yaml, f.Agent.PortMapping, c.want)
		}
	}
}

// TestWANInterface: wan_interface defaults to wan (netifd's name for the
// uplink), takes another interface name, and refuses what the init
// script could not pass to procd as one name.
func TestWANInterface(t *testing.T) {
	k, _ := secure.GeneratePrivateKey()
	base := "name: r\nprivate_key: " + k.String() + "\nrelays:\n  - address: relay.example\n    public_key: " + k.Public().String() + "\n"
	f, err := ParseAgent("a.yaml", []byte(base))
	if err != nil || f.WANInterface != "wan" {
		t.Fatalf("default: %v, %q", err, f.WANInterface)
	}
	f, err = ParseAgent("a.yaml", []byte(base+"wan_interface: wwan_lte\n"))
	if err != nil || f.WANInterface != "wwan_lte" {
		t.Fatalf("wwan_lte: %v, %+v", err, f)
	}
	_, err = ParseAgent("a.yaml", []byte(base+"wan_interface: \"wan wan6\"\n"))
	if err == nil || !strings.Contains(err.Error(), `a.yaml:6: wan_interface: "wan wan6" must be an interface name`) {
		t.Fatalf("two names: %v", err)
	}
}
