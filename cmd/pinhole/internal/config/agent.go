package config

import (
	"fmt"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/protocol"
	"gopkg.in/yaml.v3"
)

// AgentFile is what agent.yaml holds: the agent's runtime Config plus the
// process settings cmd/pinhole applies itself.
type AgentFile struct {
	Agent       *agent.Config
	Log         Log
	MemoryLimit int64 // bytes; 0 = no soft limit
	// WANInterface is the OpenWrt interface (netifd's name, default wan)
	// whose coming up the init script's procd trigger reports to the
	// agent as SIGUSR1. The init script reads it from the file; here it
	// is only checked, so `pinhole check` catches a typo.
	WANInterface string
}

// LoadAgent reads and checks an agent config file.
func LoadAgent(path string) (*AgentFile, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseAgent(path, data)
}

// ParseAgent checks an agent config; path is used for messages and to
// resolve a relative private_key_file.
func ParseAgent(path string, data []byte) (*AgentFile, error) {
	c := &collector{file: path}
	root := parseDoc(c, data)
	if root == nil {
		return nil, c.err()
	}
	m := newMapping(c, root, "")
	cfg := &agent.Config{}
	f := &AgentFile{Agent: cfg}
	cfg.Name = m.name("name")
	cfg.PrivateKey = m.privateKey(path)
	relays := m.sequence("relays")
	if len(relays) == 0 {
		m.require("relays")
		if m.get("relays") != nil {
			c.add(m.get("relays"), "relays", "needs at least one relay")
		}
	}
	for i, rn := range relays {
		rm := newMapping(c, rn, fmt.Sprintf("relays[%d]", i))
		cfg.Relays = append(cfg.Relays, agent.Relay{Address: rm.hostPort("address", true, 7700), PublicKey: rm.publicKey("public_key")})
		rm.done()
	}
	cfg.Transport = agent.Transport(m.enum("transport", "auto", "auto", "udp", "tcp"))
	cfg.ListenPort = m.integer("listen_port", 0, 0, 65535)
	cfg.PortMapping = m.enum("port_mapping", "auto", "auto", "off") == "auto"
	// heartbeat: auto (the default) tunes the interval to the NAT's
	// measured mapping lifetime within heartbeat_min and heartbeat_max;
	// a duration fixes it.
	if n, s, ok := m.scalar("heartbeat"); ok && s != "auto" {
		if _, err := time.ParseDuration(s); err != nil {
			c.add(n, "heartbeat", "%q is neither auto nor a duration (examples: auto, 15s, 2m)", s)
		} else {
			cfg.Heartbeat = m.duration("heartbeat", 0, time.Second, 10*time.Minute)
		}
	}
	hbMin, hbMax := m.get("heartbeat_min"), m.get("heartbeat_max")
	cfg.HeartbeatMin = m.duration("heartbeat_min", 5*time.Second, time.Second, 10*time.Minute)
	cfg.HeartbeatMax = m.duration("heartbeat_max", 5*time.Minute, time.Second, 10*time.Minute)
	for _, f := range []struct {
		name string
		n    *yaml.Node
	}{{"heartbeat_min", hbMin}, {"heartbeat_max", hbMax}} {
		if cfg.Heartbeat > 0 && f.n != nil {
			c.add(f.n, f.name, "is for heartbeat: auto only (heartbeat is %v)", cfg.Heartbeat)
		}
	}
	if cfg.Heartbeat == 0 && cfg.HeartbeatMin > cfg.HeartbeatMax {
		n := hbMin
		if n == nil {
			n = hbMax
		}
		c.add(n, "heartbeat_min", "%v is above heartbeat_max %v", cfg.HeartbeatMin, cfg.HeartbeatMax)
	}
	cfg.ReconnectMax = m.duration("reconnect_max", 30*time.Second, time.Second, time.Hour)
	cfg.Admin = m.admin("admin", "127.0.0.1:7702", false)
	f.MemoryLimit = m.size("memory_limit", 14<<20)
	f.Log = m.logSection()
	f.WANInterface = "wan"
	if n, s, ok := m.scalar("wan_interface"); ok {
		if protocol.ValidName(s) {
			f.WANInterface = s
		} else {
			c.add(n, "wan_interface", "%q must be an interface name: 1-63 letters, digits, '.', '_' or '-'", s)
		}
	}
	cfg.Tuning = m.kcpSection()
	cfg.Tuning.CapWindow(f.MemoryLimit)

	names := map[string]int{}
	ports := map[protocol.Proto]map[uint16]string{protocol.ProtoTCP: {}, protocol.ProtoUDP: {}}
	for i, en := range m.sequence("expose") {
		path := fmt.Sprintf("expose[%d]", i)
		em := newMapping(c, en, path)
		e := agent.Exposure{Name: em.name("name")}
		proto := em.enum("protocol", "tcp", "tcp", "udp")
		e.Proto = protocol.ProtoTCP
		if proto == "udp" {
			e.Proto = protocol.ProtoUDP
		}
		e.Local = em.hostPort("local", true, 0)
		// remote_port publishes the service on the relay; peers offers it
		// to the named agents only (peer sessions); either or both.
		e.RemotePort = em.port("remote_port", false)
		e.Peers = em.names("peers")
		if e.RemotePort == 0 && len(e.Peers) == 0 && em.get("remote_port") == nil {
			c.add(en, path, "needs remote_port (public on the relay), peers (private to the named agents), or both")
		}
		pp := em.get("proxy_protocol")
		e.ProxyProtocol = em.enum("proxy_protocol", "off", "off", "v1", "v2")
		if pp != nil && e.Proto == protocol.ProtoUDP && e.ProxyProtocol != "off" {
			c.add(pp, path+".proxy_protocol", "is for tcp exposures only")
		}
		idle, flows := em.get("idle_timeout"), em.get("max_flows")
		e.IdleTimeout = em.duration("idle_timeout", time.Minute, time.Second, 24*time.Hour)
		e.MaxFlows = em.integer("max_flows", 256, 1, 65536)
		if e.Proto == protocol.ProtoTCP {
			if idle != nil {
				c.add(idle, path+".idle_timeout", "is for udp exposures only")
			}
			if flows != nil {
				c.add(flows, path+".max_flows", "is for udp exposures only")
			}
		}
		if prev, dup := names[e.Name]; dup && e.Name != "" {
			c.add(en, path+".name", "%q is already used by expose[%d]", e.Name, prev)
		}
		names[e.Name] = i
		if prev, dup := ports[e.Proto][e.RemotePort]; dup && e.RemotePort != 0 {
			c.add(em.get("remote_port"), path+".remote_port", "%s port %d is already used by exposure %q", e.Proto, e.RemotePort, prev)
		}
		ports[e.Proto][e.RemotePort] = e.Name
		em.done()
		cfg.Expose = append(cfg.Expose, e)
	}
	cfg.Connect = parseConnect(c, m, cfg.Name)
	m.done()
	if err := c.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// parseConnect reads the connect section: services of peer agents made
// reachable on a local address.
func parseConnect(c *collector, m *mapping, self string) []agent.Connect {
	var out []agent.Connect
	listens := map[string]int{}
	for i, n := range m.sequence("connect") {
		path := fmt.Sprintf("connect[%d]", i)
		cm := newMapping(c, n, path)
		k := agent.Connect{Peer: cm.name("peer"), Service: cm.name("service")}
		if k.Peer != "" && k.Peer == self {
			c.add(cm.get("peer"), path+".peer", "%q is this agent's own name", k.Peer)
		}
		k.Proto = protocol.ProtoTCP
		if cm.enum("protocol", "tcp", "tcp", "udp") == "udp" {
			k.Proto = protocol.ProtoUDP
		}
		k.Listen = cm.hostPort("listen", true, 0)
		if cm.get("public_key") != nil {
			k.PublicKey = cm.publicKey("public_key")
		}
		key := k.Proto.String() + " " + k.Listen
		if prev, dup := listens[key]; dup && k.Listen != "" {
			c.add(cm.get("listen"), path+".listen", "%s %s is already used by connect[%d]", k.Proto, k.Listen, prev)
		}
		listens[key] = i
		cm.done()
		out = append(out, k)
	}
	return out
}
