package netsim

import (
	"fmt"
	"time"
)

// Mapping is how a NAT reuses an external port, RFC 4787 §4.1.
type Mapping int

const (
	// EIM: one external port for an internal address and port, whatever
	// the destination (RFC 4787 REQ-1 makes it a MUST).
	EIM Mapping = iota + 1
	// ADM: a new external port per destination IP.
	ADM
	// APDM: a new external port per destination IP and port ("symmetric").
	APDM
)

func (m Mapping) String() string {
	switch m {
	case EIM:
		return "endpoint-independent mapping"
	case ADM:
		return "address-dependent mapping"
	case APDM:
		return "address-and-port-dependent mapping"
	}
	return fmt.Sprintf("Mapping(%d)", int(m))
}

// Filtering is which inbound packets a mapping lets in, RFC 4787 §5.
type Filtering int

const (
	// EIF: anyone may send to a live mapping (REQ-8 recommends it when
	// application transparency matters most).
	EIF Filtering = iota + 1
	// ADF: only IPs the internal endpoint sent to (REQ-8's choice when
	// stricter filtering matters most).
	ADF
	// APDF: only the exact IP and port the internal endpoint sent to (Linux
	// conntrack).
	APDF
)

func (f Filtering) String() string {
	switch f {
	case EIF:
		return "endpoint-independent filtering"
	case ADF:
		return "address-dependent filtering"
	case APDF:
		return "address-and-port-dependent filtering"
	}
	return fmt.Sprintf("Filtering(%d)", int(f))
}

// PortAllocation is how a NAT picks a new mapping's external port, RFC 4787
// §4.2.1. None of them overloads a port (REQ-3): an external port belongs
// to one mapping at a time.
type PortAllocation int

const (
	// PortPreserving keeps the internal port when it is free, else picks at
	// random (what Linux masquerade does).
	PortPreserving PortAllocation = iota + 1
	// PortSequential gives each new mapping the previous port plus
	// NATConfig.PortDelta, skipping ports in use: what birthday-free port
	// prediction exploits.
	PortSequential
	// PortRandom picks uniformly from the pool (masquerade --random).
	PortRandom
)

func (p PortAllocation) String() string {
	switch p {
	case PortPreserving:
		return "port preserving"
	case PortSequential:
		return "sequential"
	case PortRandom:
		return "random"
	}
	return fmt.Sprintf("PortAllocation(%d)", int(p))
}

// NATConfig parameterises a NAT box. The zero value of a field takes the
// default named in its comment.
type NATConfig struct {
	Mapping   Mapping        // default EIM
	Filtering Filtering      // default APDF
	Ports     PortAllocation // default PortPreserving
	// PortDelta is the step of PortSequential (default 1; negative allowed).
	PortDelta int
	// PortMin and PortMax bound the external ports (default 1024-65535: REQ-3
	// a) keeps ports of 1024 and above out of the well-known range).
	PortMin, PortMax uint16

	// Timeout is a mapping's lifetime without refreshing traffic. Default
	// 30s, Linux conntrack's nf_conntrack_udp_timeout and the lab's
	// default: below REQ-5's two minutes, as many routers are.
	Timeout time.Duration
	// InboundRefresh lets inbound packets refresh a mapping too (REQ-6 a:
	// MAY). Outbound packets always refresh it (REQ-6: MUST).
	InboundRefresh bool
	// Hairpin lets an internal host reach another one through its external
	// mapping (REQ-9), the packet arriving from the sender's own mapping
	// (REQ-9 a).
	Hairpin bool

	// Loss is the probability that a packet crossing the NAT's uplink is
	// dropped, each direction, drawn from a generator seeded with Seed.
	Loss float64
	Seed uint64
	// Delay is added to each packet crossing the uplink, each direction,
	// plus a uniform random amount in [-Jitter, +Jitter] (never below 0).
	Delay, Jitter time.Duration
}

// defaultTimeout is the lab's (and Linux conntrack's) UDP timeout.
const defaultTimeout = 30 * time.Second

func (c NATConfig) withDefaults() NATConfig {
	if c.Mapping == 0 {
		c.Mapping = EIM
	}
	if c.Filtering == 0 {
		c.Filtering = APDF
	}
	if c.Ports == 0 {
		c.Ports = PortPreserving
	}
	if c.PortDelta == 0 {
		c.PortDelta = 1
	}
	if c.PortMin == 0 {
		c.PortMin = 1024
	}
	if c.PortMax == 0 {
		c.PortMax = 65535
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	return c
}

func (c NATConfig) validate() error {
	switch {
	case c.Mapping < EIM || c.Mapping > APDM:
		return fmt.Errorf("nat config: bad mapping %v", c.Mapping)
	case c.Filtering < EIF || c.Filtering > APDF:
		return fmt.Errorf("nat config: bad filtering %v", c.Filtering)
	case c.Ports < PortPreserving || c.Ports > PortRandom:
		return fmt.Errorf("nat config: bad port allocation %v", c.Ports)
	case c.PortMin > c.PortMax:
		return fmt.Errorf("nat config: port range %d-%d is empty", c.PortMin, c.PortMax)
	case c.Loss < 0 || c.Loss > 1:
		return fmt.Errorf("nat config: loss %v is not a probability", c.Loss)
	case c.Timeout < 0 || c.Delay < 0 || c.Jitter < 0:
		return fmt.Errorf("nat config: negative duration")
	}
	return nil
}

// NATType names the classic NAT behaviours (RFC 3489's names, as in
// lab.Behaviour), each a preset of RFC 4787 behaviours.
type NATType int

const (
	None           NATType = iota // no NAT: the host sits on the outer network
	FullCone                      // EIM, EIF
	RestrictedCone                // EIM, ADF
	PortRestricted                // EIM, APDF (Linux conntrack with EIM maps)
	Symmetric                     // APDM with random ports, APDF
	SymmetricSeq                  // APDM with sequential ports (delta 1 from 30000), APDF
)

// NATTypes lists every preset, in the lab's table order.
var NATTypes = []NATType{None, FullCone, RestrictedCone, PortRestricted, Symmetric, SymmetricSeq}

func (t NATType) String() string {
	switch t {
	case None:
		return "none"
	case FullCone:
		return "full-cone"
	case RestrictedCone:
		return "restricted-cone"
	case PortRestricted:
		return "port-restricted"
	case Symmetric:
		return "symmetric"
	case SymmetricSeq:
		return "symmetric-seq"
	}
	return fmt.Sprintf("NATType(%d)", int(t))
}

// Config returns the preset's behaviours; ok is false for None, which has
// no NAT box (its host sits on the outer network).
func (t NATType) Config() (cfg NATConfig, ok bool) {
	switch t {
	case FullCone:
		return NATConfig{Mapping: EIM, Filtering: EIF, Ports: PortPreserving}, true
	case RestrictedCone:
		return NATConfig{Mapping: EIM, Filtering: ADF, Ports: PortPreserving}, true
	case PortRestricted:
		return NATConfig{Mapping: EIM, Filtering: APDF, Ports: PortPreserving}, true
	case Symmetric:
		return NATConfig{Mapping: APDM, Filtering: APDF, Ports: PortRandom}, true
	case SymmetricSeq:
		// The lab's symmetric-seq counts from 30000 with delta 1.
		return NATConfig{Mapping: APDM, Filtering: APDF, Ports: PortSequential, PortDelta: 1, PortMin: 30000}, true
	}
	return NATConfig{}, false
}
