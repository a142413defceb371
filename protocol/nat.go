package protocol

import (
	"fmt"
	"net/netip"
	"time"
)

// The RFC 4787 vocabulary both ends use about NATs. An agent measures its
// NAT (agent/internal/netcheck); the relay will pick a hole-punching
// strategy from the reports of two agents, so the words live here.

// Mapping is a NAT's mapping behaviour (RFC 4787 §4.1; RFC 5780 §4.3).
type Mapping byte

const (
	MappingUnknown Mapping = iota
	MappingEndpointIndependent
	MappingAddressDependent
	MappingAddressPortDependent
)

// Filtering is a NAT's filtering behaviour (RFC 4787 §5; RFC 5780 §4.4).
type Filtering byte

const (
	FilteringUnknown Filtering = iota
	FilteringEndpointIndependent
	FilteringAddressDependent
	FilteringAddressPortDependent
)

var behaviourWords = [...]string{"unknown", "endpoint-independent", "address-dependent", "address-and-port-dependent"}

func (m Mapping) String() string {
	if int(m) < len(behaviourWords) {
		return behaviourWords[m]
	}
	return fmt.Sprintf("mapping(%d)", byte(m))
}

func (f Filtering) String() string {
	if int(f) < len(behaviourWords) {
		return behaviourWords[f]
	}
	return fmt.Sprintf("filtering(%d)", byte(f))
}

// PortAllocation is how a NAT picks external ports for new mappings
// (RFC 4787 §4.2.2 port preservation, §4.2.1 and the seed's "port delta"
// for sequential allocation, which port prediction exploits).
type PortAllocation byte

const (
	PortsUnknown PortAllocation = iota
	PortsPreserved
	PortsSequential
	PortsRandom
)

// Tristate is a yes/no fact that may not have been measured.
type Tristate byte

const (
	Unknown Tristate = iota
	Yes
	No
)

func (t Tristate) String() string {
	switch t {
	case Yes:
		return "yes"
	case No:
		return "no"
	}
	return "unknown"
}

// NATReport is what an agent learned about the path from its socket to
// the internet.
type NATReport struct {
	UDP       Tristate       // STUN over UDP answered
	Local     netip.AddrPort // the socket's own address
	Public    netip.AddrPort // its mapping as the relay sees it
	Mapping   Mapping
	Filtering Filtering
	Ports     PortAllocation
	Delta     int      // port delta between consecutive new mappings (PortsSequential)
	Hairpin   Tristate // RFC 4787 REQ-9: a LAN peer reaches our public mapping
	Lifetime  time.Duration
}

// NoNAT reports whether the socket's address is its public one.
func (r NATReport) NoNAT() bool { return r.Public.IsValid() && r.Public == r.Local }

// PortsString gives the port allocation as `pinhole nat` prints it.
func (r NATReport) PortsString() string {
	switch r.Ports {
	case PortsPreserved:
		return "preserved"
	case PortsSequential:
		return fmt.Sprintf("sequential (delta %+d)", r.Delta)
	case PortsRandom:
		return "random"
	}
	return "unknown"
}

// Classic gives the RFC 3489 name the seed article uses: the mapping and
// filtering behaviours folded into one of five words.
func (r NATReport) Classic() string {
	switch {
	case r.UDP != Yes:
		return "unknown"
	case r.NoNAT():
		return "none"
	case r.Mapping == MappingUnknown || r.Filtering == FilteringUnknown:
		return "unknown"
	case r.Mapping != MappingEndpointIndependent:
		return "symmetric"
	case r.Filtering == FilteringEndpointIndependent:
		return "full cone"
	case r.Filtering == FilteringAddressDependent:
		return "restricted cone"
	}
	return "port-restricted cone"
}
