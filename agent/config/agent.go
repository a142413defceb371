// Package config reads agent.yaml, the router side's configuration, into an
// Agent.
//
// The file is read strictly (unknown fields are errors, with a suggestion
// for the typo) and checked completely before anything runs: the agent
// starts under procd at boot, and a config error must stop it at once with
// every problem named by file, line and field, instead of surfacing one at
// a time as the tunnel comes up, or never, in a reconnect loop. Loading
// opens no socket and resolves no name, so `pinhole check` judges a file
// the same way on a laptop as on the router.
//
// The shared pieces (the error format, log and kcp sections, durations,
// sizes, host:port syntax) live in internal/confkit, which relay/config
// uses too.
package config

import (
	"fmt"
	"os"
	"time"

	"github.com/pinhole/pinhole/internal/confkit"
	"github.com/pinhole/pinhole/protocol/secure"
	"gopkg.in/yaml.v3"
)

// Agent is agent.yaml, checked and with defaults applied.
type Agent struct {
	Name         string
	PrivateKey   secure.PrivateKey
	Relays       []Relay       // tried in order; never empty
	Transport    Transport     // auto (default), udp or tcp
	ListenPort   uint16        // the agent's one UDP socket (0: ephemeral)
	Heartbeat    time.Duration // link heartbeat (default 15s)
	ReconnectMax time.Duration // cap of the reconnect backoff (default 30s)
	Admin        string        // status endpoint: loopback IP:port or unix socket path; "" = off
	MemoryLimit  int64         // soft limit for the Go runtime in bytes; 0 = none
	Log          confkit.Log
	KCP          confkit.KCP
	Expose       []Exposure
}

// Relay is one relay the agent may use.
type Relay struct {
	Address   string // host:port, not resolved
	PublicKey secure.PublicKey
	Line      int // where the entry starts in the file
}

// Transport selects how the agent reaches its relays.
type Transport uint8

const (
	// TransportAuto tries UDP (KCP) and falls back to TCP on the same port
	// when UDP gets no answer.
	TransportAuto Transport = iota
	TransportUDP
	TransportTCP
)

var transportNames = []string{TransportAuto: "auto", TransportUDP: "udp", TransportTCP: "tcp"}

func (t Transport) String() string                { return confkit.EnumString(transportNames, t) }
func (t Transport) MarshalText() ([]byte, error)  { return []byte(t.String()), nil }
func (t *Transport) UnmarshalText(b []byte) error { return confkit.EnumParse(transportNames, t, b) }

// Defaults and limits. The relay's port is the project's (DESIGN.md); the
// status port is the relay's plus one, so one host can run both.
const (
	DefaultRelayPort    = 7700
	DefaultAdmin        = "127.0.0.1:7702"
	DefaultHeartbeat    = 15 * time.Second
	DefaultReconnectMax = 30 * time.Second
	// DefaultMemoryLimit leaves a 64 MB router's other daemons room; the
	// idle agent uses single-digit MiB.
	DefaultMemoryLimit = 24 << 20
	// minMemoryLimit: below this the Go runtime would collect garbage
	// without pause; it is a typo (24 for 24MiB), not a choice.
	minMemoryLimit = 1 << 20
	// Heartbeats faster than 1s waste a router's radio and battery-backed
	// uplinks; slower than 10m outlive most NAT UDP mappings (RFC 4787
	// REQ-5 asks for at least 2 minutes, many devices keep 30 s).
	minHeartbeat, maxHeartbeat = time.Second, 10 * time.Minute
)

// Load reads and checks the agent config at path.
func Load(path string) (*Agent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse checks an agent config. path names the file in errors and is the
// base of a relative private_key_file. The error, if any, joins one
// *confkit.Error per problem, in file order.
func Parse(path string, data []byte) (*Agent, error) {
	doc := confkit.NewDoc(path)
	m := doc.Root(data)
	if m == nil {
		return nil, doc.Err()
	}
	a := &Agent{Name: m.Name("name"), PrivateKey: m.PrivateKey()}
	a.Relays = readRelays(m, a.PrivateKey)
	m.Enum("transport", &a.Transport)
	a.ListenPort = m.Port("listen_port", 0, true)
	a.Heartbeat = m.Duration("heartbeat", DefaultHeartbeat, minHeartbeat, maxHeartbeat)
	a.ReconnectMax = m.Duration("reconnect_max", DefaultReconnectMax, time.Second, time.Hour)
	a.Admin = m.Admin("admin", DefaultAdmin, false, "")
	a.MemoryLimit = m.Size("memory_limit", DefaultMemoryLimit)
	if a.MemoryLimit > 0 && a.MemoryLimit < minMemoryLimit {
		m.Errorf("memory_limit", "%d bytes is below 1MiB (write 24MiB, not 24; off disables the limit)", a.MemoryLimit)
	}
	a.Log = m.Log()
	a.KCP = m.KCP()
	a.Expose = readExposures(m)
	if err := doc.Err(); err != nil {
		return nil, err
	}
	return a, nil
}

// readRelays reads the non-empty relays list. own is the agent's key, to
// catch the agent's public key pasted where the relay's belongs.
func readRelays(m *confkit.Map, own secure.PrivateKey) []Relay {
	n := m.Require("relays", "a list of {address, public_key}")
	if n == nil {
		return nil
	}
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		m.Errorf("relays", "needs at least one relay")
	}
	var ownPub secure.PublicKey
	if own != (secure.PrivateKey{}) {
		ownPub = own.Public()
	}
	var relays []Relay
	for _, rm := range m.Maps("relays") {
		r := Relay{
			Address:   rm.HostPort("address", true, DefaultRelayPort),
			PublicKey: rm.PublicKey("public_key"),
			Line:      rm.Line(),
		}
		if !r.PublicKey.IsZero() && r.PublicKey == ownPub {
			rm.Errorf("public_key", "is this agent's own public key; the relay's is `pinhole pubkey < relay.key` on the relay")
		}
		relays = append(relays, r)
	}
	return relays
}
