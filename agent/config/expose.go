package config

import (
	"fmt"
	"time"

	"github.com/pinhole/pinhole/internal/confkit"
)

// Exposure is one local service published on a relay port.
type Exposure struct {
	Name          string
	Protocol      confkit.Protocol // tcp (default) or udp
	Local         string           // host:port the agent dials, not resolved
	RemotePort    uint16           // public port on the relay
	ProxyProtocol ProxyProtocol    // tcp only
	IdleTimeout   time.Duration    // udp only: a flow with no datagram this long ends
	MaxFlows      int              // udp only: client addresses served at once
	Line          int              // where the entry starts in the file
}

// ProxyProtocol selects the PROXY protocol header (HAProxy's
// proxy-protocol.txt) the agent sends to the local service first, so it
// sees the real client address instead of the agent's.
type ProxyProtocol uint8

const (
	ProxyOff ProxyProtocol = iota
	ProxyV1                // text header
	ProxyV2                // binary header
)

var proxyNames = []string{ProxyOff: "off", ProxyV1: "v1", ProxyV2: "v2"}

func (p ProxyProtocol) String() string                { return confkit.EnumString(proxyNames, p) }
func (p ProxyProtocol) MarshalText() ([]byte, error)  { return []byte(p.String()), nil }
func (p *ProxyProtocol) UnmarshalText(b []byte) error { return confkit.EnumParse(proxyNames, p, b) }

// UDP flow defaults: 60 s outlasts a DNS or game exchange's gaps and
// matches common NAT UDP timeouts; 256 flows bound the agent's sockets and
// memory on a small router.
const (
	DefaultIdleTimeout = 60 * time.Second
	DefaultMaxFlows    = 256
	maxMaxFlows        = 65535
)

// readExposures reads the expose list: names unique, remote ports unique
// per protocol (the relay can listen on 8080/tcp and 8080/udp at once).
func readExposures(m *confkit.Map) []Exposure {
	names := map[string]int{}
	ports := map[confkit.Protocol]map[uint16]int{confkit.TCP: {}, confkit.UDP: {}}
	var list []Exposure
	for i, em := range m.Maps("expose") {
		e := readExposure(em)
		if prev, dup := names[e.Name]; dup && e.Name != "" {
			em.Errorf("name", "%q is already used by expose[%d]", e.Name, prev)
		} else if e.Name != "" {
			names[e.Name] = i
		}
		if prev, dup := ports[e.Protocol][e.RemotePort]; dup && e.RemotePort != 0 {
			em.Errorf("remote_port", "%s port %d is already used by expose[%d] (%q)",
				e.Protocol, e.RemotePort, prev, list[prev].Name)
		} else if e.RemotePort != 0 {
			ports[e.Protocol][e.RemotePort] = i
		}
		list = append(list, e)
	}
	return list
}

func readExposure(em *confkit.Map) Exposure {
	e := Exposure{Name: em.Name("name"), Protocol: confkit.TCP, Line: em.Line()}
	em.Enum("protocol", &e.Protocol)
	e.Local = em.HostPort("local", true, 0)
	if em.Require("remote_port", "the public port on the relay, 1-65535") != nil {
		e.RemotePort = em.Port("remote_port", 0, false)
	}
	em.Enum("proxy_protocol", &e.ProxyProtocol)
	e.IdleTimeout = em.Duration("idle_timeout", DefaultIdleTimeout, time.Second, 24*time.Hour)
	e.MaxFlows = em.Int("max_flows", DefaultMaxFlows, 1, maxMaxFlows)

	// Settings of the other protocol are refused rather than ignored: the
	// operator expected them to do something.
	switch e.Protocol {
	case confkit.UDP:
		if em.Has("proxy_protocol") && e.ProxyProtocol != ProxyOff {
			em.Errorf("proxy_protocol", "is for tcp exposures only (this one is udp)")
		}
	case confkit.TCP:
		for _, f := range []string{"idle_timeout", "max_flows"} {
			if em.Has(f) {
				em.Errorf(f, "is for udp exposures only (this one is tcp)")
			}
		}
	}
	return e
}

// String describes the exposure for logs: "web tcp 8080 -> 127.0.0.1:80".
func (e Exposure) String() string {
	return fmt.Sprintf("%s %s %d -> %s", e.Name, e.Protocol, e.RemotePort, e.Local)
}
