package relay

import (
	"net"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// Config is the relay's runtime configuration. cmd/pinhole builds it from
// relay.yaml; tests build it directly.
type Config struct {
	Listen string // host:port, UDP and TCP
	// AltListen is another IP of this host and another port (IP:port):
	// with it the relay answers RFC 5780 NAT behaviour discovery.
	AltListen string
	// StateFile remembers where the agents are, so that after a restart
	// the relay invites them back at once ("" = off; see state.go).
	StateFile    string
	PrivateKey   secure.PrivateKey
	Bind         string        // IP the exposed ports listen on ("" = all)
	Admin        string        // status endpoint, loopback; "" = off
	AgentTimeout time.Duration // drop an agent silent this long (default 60s)
	UDPFlowIdle  time.Duration // expire UDP exposure flows idle this long (default 60s)
	Tuning       link.Tuning
	Agents       []AgentEntry

	// ListenPacket opens the UDP socket (nil: net.ListenPacket). Tests run
	// the relay on a simulated network (internal/netsim) through it;
	// batched I/O applies only to a real *net.UDPConn.
	ListenPacket func(network, address string) (net.PacketConn, error)
	// ListenTCP opens the TCP fallback listener on the UDP socket's port
	// number (nil: net.Listen). A relay on a simulated network has no real
	// address for it, so its tests give it a loopback listener.
	ListenTCP func(network, address string) (net.Listener, error)
}

// AgentEntry is one agent the relay accepts.
type AgentEntry struct {
	Name      string
	PublicKey secure.PublicKey
	Allow     []PortRange
}

// PortRange allows ports Low..High for Proto (0: both tcp and udp).
type PortRange struct {
	Proto     protocol.Proto
	Low, High uint16
}

// Allows reports whether the agent may expose port over proto.
func (a *AgentEntry) Allows(proto protocol.Proto, port uint16) bool {
	for _, r := range a.Allow {
		if (r.Proto == 0 || r.Proto == proto) && port >= r.Low && port <= r.High {
			return true
		}
	}
	return false
}

func (c *Config) agentByKey(k secure.PublicKey) *AgentEntry {
	for i := range c.Agents {
		if c.Agents[i].PublicKey == k {
			return &c.Agents[i]
		}
	}
	return nil
}

func (c *Config) agentTimeout() time.Duration {
	if c.AgentTimeout > 0 {
		return c.AgentTimeout
	}
	return time.Minute
}

func (c *Config) flowIdle() time.Duration {
	if c.UDPFlowIdle > 0 {
		return c.UDPFlowIdle
	}
	return time.Minute
}

// withDefaults returns a copy of c whose zero Tuning is the default one.
func (c *Config) withDefaults() *Config {
	d := *c
	d.Tuning = d.Tuning.OrDefault()
	return &d
}
