package agent

import (
	"net"
	"time"

	"github.com/pinhole/pinhole/agent/internal/netcheck"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// Config is the agent's runtime configuration. cmd/pinhole builds it from
// agent.yaml; tests build it directly.
type Config struct {
	Name       string
	PrivateKey secure.PrivateKey
	Relays     []Relay   // tried in order; the first that answers wins
	Transport  Transport // auto, udp or tcp
	ListenPort int       // the one UDP socket's port (0: ephemeral)
	// PortMapping asks the LAN's gateway (UPnP IGD, NAT-PMP, PCP) to
	// forward a public port to the UDP socket. agent.yaml's
	// port_mapping: auto (its default) sets it; off here, so an agent a
	// test builds never talks to the host's real gateway. Read at start.
	PortMapping bool
	// Heartbeat is the Ping interval; 0 is auto: the safe default until
	// the NAT's mapping lifetime is measured, then tuned to it within
	// HeartbeatMin and HeartbeatMax (defaults 5 s and 5 min; timers.go).
	Heartbeat                  time.Duration
	HeartbeatMin, HeartbeatMax time.Duration
	ReconnectMax               time.Duration // cap of the reconnect backoff (default 30s)
	Admin                      string        // status endpoint ("" = off)
	Tuning                     link.Tuning
	Expose                     []Exposure
	Connect                    []Connect // peers' services reached over peer sessions

	// UDPWait is how long auto mode waits for a UDP handshake answer
	// before trying TCP (default 3s).
	UDPWait time.Duration
	// UDPProbe is how often auto mode on the TCP fallback checks whether
	// UDP works again (default 60s).
	UDPProbe time.Duration
	// Lifetime is how heartbeat auto probes the mapping lifetime (zero:
	// the real schedule, minutes long); tests scale it down.
	Lifetime LifetimeSchedule
	// Clock is the wall clock for handshake timestamps (nil: time.Now).
	// Tests give the agent a wrong clock through it.
	Clock func() time.Time
	// ListenPacket opens the agent's UDP socket (nil: net.ListenPacket).
	// Tests run the agent on a simulated network (internal/netsim) through
	// it; batched I/O applies only to a real *net.UDPConn.
	ListenPacket func(network, address string) (net.PacketConn, error)
}

// LifetimeSchedule is how the mapping lifetime is probed (see package
// netcheck).
type LifetimeSchedule = netcheck.LifetimeSchedule

// Relay is one relay the agent may use.
type Relay struct {
	Address   string
	PublicKey secure.PublicKey
}

// Transport selects how the agent reaches relays.
type Transport string

const (
	TransportAuto Transport = "auto"
	TransportUDP  Transport = "udp"
	TransportTCP  Transport = "tcp"
)

// Exposure is one local service published on the relay.
type Exposure struct {
	Name          string
	Proto         protocol.Proto
	Local         string // host:port
	RemotePort    uint16
	ProxyProtocol string        // "", "off", "v1" or "v2" (TCP only)
	IdleTimeout   time.Duration // UDP flows (default 60s)
	MaxFlows      int           // UDP flows at once (default 256)
	// Peers may reach this service over peer sessions (agent names as
	// the relay knows them); RemotePort 0 with Peers is private to them.
	Peers []string
}

// Connect makes a peer agent's service reachable on a local address.
type Connect struct {
	Peer    string // the agent's name on the relay
	Service string // the name of the peer's exposure
	Proto   protocol.Proto
	Listen  string // local host:port
	// PublicKey pins the peer's key (zero: trust the relay's introduction).
	PublicKey secure.PublicKey
}

// withDefaults returns a copy of c with the zero values that cannot be
// used as they are replaced by their documented defaults (the rest, such
// as Heartbeat, are read through methods that apply theirs).
func (c *Config) withDefaults() *Config {
	d := *c
	d.Tuning = d.Tuning.OrDefault()
	if d.Transport == "" {
		d.Transport = TransportAuto
	}
	return &d
}
