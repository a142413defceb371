package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
	"github.com/pinhole/pinhole/relay"
	"gopkg.in/yaml.v3"
)

// RelayFile is what relay.yaml holds: the relay's runtime Config plus the
// process settings cmd/pinhole applies itself.
type RelayFile struct {
	Relay       *relay.Config
	Log         Log
	MemoryLimit int64 // bytes; 0 = no soft limit
}

// LoadRelay reads and checks a relay config file.
func LoadRelay(path string) (*RelayFile, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseRelay(path, data)
}

// ParseRelay checks a relay config.
func ParseRelay(path string, data []byte) (*RelayFile, error) {
	c := &collector{file: path}
	root := parseDoc(c, data)
	if root == nil {
		return nil, c.err()
	}
	m := newMapping(c, root, "")
	cfg := &relay.Config{}
	f := &RelayFile{Relay: cfg}
	cfg.Listen = m.listenAddr("listen", "0.0.0.0:7700")
	// alt_listen: another IP of this host and another port, for RFC 5780
	// NAT behaviour discovery (`pinhole nat`, agents' own checks).
	if n, alt, ok := m.scalar("alt_listen"); ok {
		altAP, err := netip.ParseAddrPort(alt)
		lis, lerr := netip.ParseAddrPort(cfg.Listen)
		switch {
		case err != nil || altAP.Port() == 0 || altAP.Addr().IsUnspecified():
			c.add(n, "alt_listen", "%q is not IP:PORT of this host (a second address, like 198.51.100.2:7701)", alt)
		case lerr != nil || lis.Addr().IsUnspecified():
			c.add(n, "alt_listen", "needs listen on a specific IP (RFC 5780 answers name the address they come from), not %s", cfg.Listen)
		case altAP.Addr() == lis.Addr() || altAP.Port() == lis.Port():
			c.add(n, "alt_listen", "%s must differ from listen %s in both IP and port", alt, cfg.Listen)
		default:
			cfg.AltListen = alt
		}
	}
	cfg.PrivateKey = m.privateKey(path)
	// state_file: where agents are, so a restarted relay invites them back
	// at once (relative to this file; its directory must exist).
	if n, st, ok := m.scalar("state_file"); ok && st != "" {
		if !filepath.IsAbs(st) {
			st = filepath.Join(filepath.Dir(path), st)
		}
		if fi, err := os.Stat(filepath.Dir(st)); err != nil || !fi.IsDir() {
			c.add(n, "state_file", "directory %s does not exist", filepath.Dir(st))
		} else {
			cfg.StateFile = st
		}
	}
	cfg.Bind = m.str("bind", "0.0.0.0")
	if _, err := netip.ParseAddr(cfg.Bind); cfg.Bind != "" && err != nil {
		c.add(m.get("bind"), "bind", "%q is not an IP address", cfg.Bind)
	}
	remote := m.boolean("admin_allow_remote", false)
	cfg.Admin = m.admin("admin", "127.0.0.1:7701", remote)
	cfg.AgentTimeout = m.duration("agent_timeout", time.Minute, 5*time.Second, time.Hour)
	cfg.UDPFlowIdle = m.duration("udp_flow_idle", time.Minute, time.Second, 24*time.Hour)
	// Off by default, unlike the agent's 14MiB: a router has a known,
	// small amount of memory and one agent's working set, while a relay's
	// live heap grows with its agents and exposures (up to about 30 MiB
	// per UDP exposure under a flood, see docs/architecture.md) and VPS
	// sizes vary. A soft limit below the live heap makes the GC run
	// continuously and take CPU from the data path, so only the operator,
	// who knows the machine, can pick it (about half the VPS's RAM).
	f.MemoryLimit = m.size("memory_limit", 0)
	f.Log = m.logSection()
	cfg.Tuning = m.kcpSection()
	cfg.Tuning.CapWindow(f.MemoryLimit)

	names := map[string]int{}
	keys := map[secure.PublicKey]int{}
	for i, an := range m.sequence("agents") {
		path := fmt.Sprintf("agents[%d]", i)
		am := newMapping(c, an, path)
		e := relay.AgentEntry{Name: am.name("name"), PublicKey: am.publicKey("public_key")}
		if prev, dup := names[e.Name]; dup && e.Name != "" {
			c.add(an, path+".name", "%q is already used by agents[%d]", e.Name, prev)
		}
		names[e.Name] = i
		if prev, dup := keys[e.PublicKey]; dup && !e.PublicKey.IsZero() {
			c.add(am.get("public_key"), path+".public_key", "same key as agents[%d]: each agent needs its own key", prev)
		}
		keys[e.PublicKey] = i
		for j, pn := range am.sequence("allow_ports") {
			r, err := parsePortRange(pn)
			if err != nil {
				c.add(pn, fmt.Sprintf("%s.allow_ports[%d]", path, j), "%v", err)
				continue
			}
			e.Allow = append(e.Allow, r)
		}
		am.done()
		cfg.Agents = append(cfg.Agents, e)
	}
	m.done()
	if err := c.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// parsePortRange reads 8080, "9000-9100", "5353/udp" or "8000-8010/tcp".
func parsePortRange(n *yaml.Node) (relay.PortRange, error) {
	if n.Kind != yaml.ScalarNode {
		return relay.PortRange{}, fmt.Errorf("must be a port or range like 8080, \"9000-9100\" or \"5353/udp\"")
	}
	s := n.Value
	var r relay.PortRange
	if body, proto, ok := strings.Cut(s, "/"); ok {
		switch proto {
		case "tcp":
			r.Proto = protocol.ProtoTCP
		case "udp":
			r.Proto = protocol.ProtoUDP
		default:
			return r, fmt.Errorf("%q: protocol must be tcp or udp", s)
		}
		s = body
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	switch {
	case err1 != nil || err2 != nil:
		return r, fmt.Errorf("%q is not a port or range like 8080, \"9000-9100\" or \"5353/udp\"", n.Value)
	case l < 1 || l > 65535 || h < 1 || h > 65535:
		return r, fmt.Errorf("%q: port out of range (1-65535)", n.Value)
	case l > h:
		return r, fmt.Errorf("%q: range start is above its end", n.Value)
	}
	r.Low, r.High = uint16(l), uint16(h)
	return r, nil
}
