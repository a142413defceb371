package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/confkit"
	"github.com/pinhole/pinhole/protocol/secure"
)

// testKey is a fixed key pair for configs written by tests.
func testKey(t testing.TB) secure.PrivateKey {
	k, err := secure.ParsePrivateKey("AK6YKmsBpPeymG59x9dAFxIj9SrIIZpoVBXsykAVHWg=")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const relayPub = "74LA3Qa9/BxAahrBitq8oTThlLB/tAUjZYh02vOvxFI="

// TestExample loads configs/agent.yaml, the reference operators read, with
// a key file made for the test beside it, so the example cannot rot.
func TestExample(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.yaml")
	os.WriteFile(path, b, 0o644)
	os.WriteFile(filepath.Join(dir, "agent.key"), []byte(testKey(t).String()+"\n"), 0o600)

	a, err := Load(path)
	if err != nil {
		t.Fatalf("configs/agent.yaml does not load:\n%v", err)
	}
	if a.Name != "home-router" || a.PrivateKey != testKey(t) || len(a.Relays) != 1 || len(a.Expose) != 3 {
		t.Fatalf("read as %+v", a)
	}
	if r := a.Relays[0]; r.Address != "relay.example.net:7700" || r.PublicKey.IsZero() || r.Line == 0 {
		t.Errorf("relay read as %+v", r)
	}
	if a.Transport != TransportAuto || a.Heartbeat != 15*time.Second || a.Admin != "127.0.0.1:7702" ||
		a.MemoryLimit != 24<<20 || a.KCP != confkit.DefaultKCP() || a.Log != confkit.DefaultLog() {
		t.Errorf("settings read as %+v", a)
	}
	want := []Exposure{
		{Name: "web", Protocol: confkit.TCP, Local: "127.0.0.1:80", RemotePort: 8080},
		{Name: "ssh", Protocol: confkit.TCP, Local: "192.168.1.10:22", RemotePort: 2222},
		{Name: "dns", Protocol: confkit.UDP, Local: "127.0.0.1:53", RemotePort: 5353},
	}
	for i, w := range want {
		e := a.Expose[i]
		w.IdleTimeout, w.MaxFlows, w.Line = DefaultIdleTimeout, DefaultMaxFlows, e.Line
		if e != w {
			t.Errorf("expose[%d] = %+v, want %+v", i, e, w)
		}
	}
}

// TestDefaults: a minimal file gets every documented default.
func TestDefaults(t *testing.T) {
	src := "name: r1\nprivate_key: " + testKey(t).String() + "\nrelays:\n  - address: relay.example.net\n    public_key: " + relayPub +
		"\n  - address: \"[2001:db8::1]\"\n    public_key: " + relayPub +
		"\nexpose:\n  - name: web\n    local: 127.0.0.1:80\n    remote_port: 8080\n"
	a, err := Parse("agent.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"relays[0].address", a.Relays[0].Address, "relay.example.net:7700"},
		{"relays[1].address", a.Relays[1].Address, "[2001:db8::1]:7700"},
		{"relays[1].line", a.Relays[1].Line, 6},
		{"transport", a.Transport.String(), "auto"},
		{"listen_port", a.ListenPort, uint16(0)},
		{"heartbeat", a.Heartbeat, 15 * time.Second},
		{"reconnect_max", a.ReconnectMax, 30 * time.Second},
		{"admin", a.Admin, "127.0.0.1:7702"},
		{"memory_limit", a.MemoryLimit, int64(24 << 20)},
		{"log.level", a.Log.Level, slog.LevelInfo},
		{"log.format", a.Log.Format.String(), "text"},
		{"kcp", a.KCP, confkit.KCP{Mode: confkit.KCPFast3, MTU: 1350, SendWindow: 1024, RecvWindow: 1024}},
		{"expose[0].protocol", a.Expose[0].Protocol, confkit.TCP},
		{"expose[0].proxy_protocol", a.Expose[0].ProxyProtocol.String(), "off"},
		{"expose[0].line", a.Expose[0].Line, 9},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestSettings reads every non-default value once.
func TestSettings(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k"), []byte(testKey(t).String()), 0o600)
	src := `name: r1
private_key_file: k
relays: [{address: "203.0.113.7:443", public_key: "` + relayPub + `"}]
transport: tcp
listen_port: 41641
heartbeat: 2m
reconnect_max: 5m
admin: /var/run/pinhole.sock
memory_limit: off
log: {level: debug, format: json}
kcp: {mode: normal, mtu: 1200, send_window: 256, recv_window: 512, data_shards: 10, parity_shards: 3}
expose:
  - {name: dns, protocol: udp, local: "[::1]:53", remote_port: 53, idle_timeout: 2m, max_flows: 16}
  - {name: web, local: "nas.lan:80", remote_port: 80, proxy_protocol: v2}
`
	a, err := Parse(filepath.Join(dir, "agent.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if a.PrivateKey != testKey(t) || a.Transport != TransportTCP || a.ListenPort != 41641 || a.Heartbeat != 2*time.Minute ||
		a.ReconnectMax != 5*time.Minute || a.Admin != "/var/run/pinhole.sock" || a.MemoryLimit != 0 ||
		a.Log != (confkit.Log{Level: slog.LevelDebug, Format: confkit.LogJSON}) ||
		a.KCP != (confkit.KCP{Mode: confkit.KCPNormal, MTU: 1200, SendWindow: 256, RecvWindow: 512, DataShards: 10, ParityShards: 3}) {
		t.Errorf("read as %+v", a)
	}
	if e := a.Expose[0]; e.Protocol != confkit.UDP || e.Local != "[::1]:53" || e.IdleTimeout != 2*time.Minute || e.MaxFlows != 16 {
		t.Errorf("dns read as %+v", e)
	}
	if e := a.Expose[1]; e.ProxyProtocol != ProxyV2 || e.Local != "nas.lan:80" || e.String() != "web tcp 80 -> nas.lan:80" {
		t.Errorf("web read as %+v", e)
	}
	b, err := Parse(filepath.Join(dir, "b.yaml"), []byte(strings.Replace(src, "admin: /var/run/pinhole.sock", "admin: off", 1)))
	if err != nil || b.Admin != "" {
		t.Errorf("admin: off read as %+v, %v", b, err)
	}
}

// TestErrorValues: callers can take each problem apart with errors.As.
func TestErrorValues(t *testing.T) {
	_, err := Parse("x.yaml", []byte("name: r1\nprivate_key: "+testKey(t).String()+"\nrelays: [{address: a, public_key: "+relayPub+"}]\nexpose:\n  - {name: w, local: \"1.2.3.4:1\", remote_port: 0}\n"))
	var ce *confkit.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *confkit.Error", err)
	}
	want := confkit.Error{File: "x.yaml", Line: 5, Field: "expose[0].remote_port", Msg: "0 is out of range (1-65535)"}
	if ce.File != want.File || ce.Line != want.Line || ce.Field != want.Field || ce.Msg != want.Msg {
		t.Errorf("got %+v, want %+v", *ce, want)
	}
}

// TestLoadMissingFile: an absent config is an I/O error, not a parse one.
func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "read config: ") {
		t.Errorf("got %v", err)
	}
}
