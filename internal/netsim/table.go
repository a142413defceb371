package netsim

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// mapping is one NAT binding: an internal endpoint (for dependent mappings,
// toward one destination key) translated to an external port.
type mapping struct {
	internal netip.AddrPort
	dest     netip.AddrPort // the destination key (see table.destKey)
	port     uint16         // external port
	last     time.Time      // last refresh (REQ-6)
	// peers are the remote endpoints the internal endpoint sent to, with the
	// time of the last packet: the filter state of RFC 4787 §5.
	peers map[netip.AddrPort]time.Time
}

type insideKey struct{ internal, dest netip.AddrPort }

// table holds a NAT's mappings; the NAT's mu guards it.
type table struct {
	cfg      NATConfig
	byInside map[insideKey]*mapping
	byPort   map[uint16]*mapping
	next     int // PortSequential's next candidate; 0: not started
	rng      *rand.Rand
}

func newTable(cfg NATConfig) table {
	// Port choice and the uplink's loss draw from separate streams of the
	// one seed ("nat", "link"), so adding loss does not move the ports.
	return table{cfg: cfg, byInside: map[insideKey]*mapping{}, byPort: map[uint16]*mapping{},
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e6174))}
}

// destKey is what distinguishes mappings of one internal endpoint (RFC 4787
// §4.1): nothing for EIM, the destination IP for ADM, IP and port for APDM.
func (t *table) destKey(dst netip.AddrPort) netip.AddrPort {
	switch t.cfg.Mapping {
	case ADM:
		return netip.AddrPortFrom(dst.Addr(), 0)
	case APDM:
		return dst
	}
	return netip.AddrPort{}
}

func (t *table) alive(m *mapping, now time.Time) bool {
	return now.Sub(m.last) < t.cfg.Timeout
}

func (t *table) remove(m *mapping) {
	delete(t.byInside, insideKey{m.internal, m.dest})
	if t.byPort[m.port] == m {
		delete(t.byPort, m.port)
	}
}

// lookup returns the live mapping of internal toward dst, or nil.
func (t *table) lookup(internal, dst netip.AddrPort, now time.Time) *mapping {
	m := t.byInside[insideKey{internal, t.destKey(dst)}]
	if m != nil && !t.alive(m, now) {
		t.remove(m)
		return nil
	}
	return m
}

// outbound finds or creates the mapping for a packet from internal to dst
// and refreshes it and its filter entry for dst: outbound traffic always
// refreshes (REQ-6). nil: no external port is free.
func (t *table) outbound(internal, dst netip.AddrPort, now time.Time) *mapping {
	m := t.lookup(internal, dst, now)
	if m == nil {
		t.sweep(now)
		port, ok := t.allocate(internal.Port())
		if !ok {
			return nil
		}
		m = &mapping{internal: internal, dest: t.destKey(dst), port: port, peers: map[netip.AddrPort]time.Time{}}
		t.byInside[insideKey{m.internal, m.dest}] = m
		t.byPort[port] = m
	}
	m.last = now
	m.peers[dst] = now
	return m
}

// byExternal returns the live mapping holding external port p, or nil.
func (t *table) byExternal(p uint16, now time.Time) *mapping {
	m := t.byPort[p]
	if m != nil && !t.alive(m, now) {
		t.remove(m)
		return nil
	}
	return m
}

// permits applies the filtering behaviour (RFC 4787 §5) to a packet from
// src arriving on m. A filter entry lives as long as a mapping would.
func (t *table) permits(m *mapping, src netip.AddrPort, now time.Time) bool {
	switch t.cfg.Filtering {
	case EIF:
		return true
	case ADF:
		for p, last := range m.peers {
			if p.Addr() == src.Addr() && now.Sub(last) < t.cfg.Timeout {
				return true
			}
		}
		return false
	}
	last, ok := m.peers[src]
	return ok && now.Sub(last) < t.cfg.Timeout
}

// sweep drops expired mappings and filter entries so their ports free up;
// it runs before each new mapping, which keeps the table as small as the
// live traffic.
func (t *table) sweep(now time.Time) {
	for _, m := range t.byPort {
		if !t.alive(m, now) {
			t.remove(m)
			continue
		}
		for p, last := range m.peers {
			if now.Sub(last) >= t.cfg.Timeout {
				delete(m.peers, p)
			}
		}
	}
}

// allocate picks a free external port by the configured behaviour
// (RFC 4787 §4.2.1); no port is shared by two mappings (REQ-3).
func (t *table) allocate(internalPort uint16) (uint16, bool) {
	lo, hi := int(t.cfg.PortMin), int(t.cfg.PortMax)
	span := hi - lo + 1
	free := func(p int) bool { return t.byPort[uint16(p)] == nil }
	switch t.cfg.Ports {
	case PortPreserving:
		if p := int(internalPort); p >= lo && p <= hi && free(p) {
			return uint16(p), true
		}
	case PortSequential:
		if t.next == 0 {
			t.next = lo
			if t.cfg.PortDelta < 0 {
				t.next = hi
			}
		}
		p := t.next
		for range span {
			if free(p) {
				t.next = wrap(p+t.cfg.PortDelta, lo, span)
				return uint16(p), true
			}
			p = wrap(p+t.cfg.PortDelta, lo, span)
		}
		return 0, false
	}
	// Random: a few draws find a port in any table that is not nearly
	// full; then a scan from a random start settles it.
	for range 32 {
		if p := lo + t.rng.IntN(span); free(p) {
			return uint16(p), true
		}
	}
	start := t.rng.IntN(span)
	for i := range span {
		if p := lo + (start+i)%span; free(p) {
			return uint16(p), true
		}
	}
	return 0, false
}

// wrap brings p back into [lo, lo+span).
func wrap(p, lo, span int) int {
	return lo + ((p-lo)%span+span)%span
}

// flush forgets every mapping (conntrack -F, a router reboot). Sequential
// allocation starts over, as after a reboot.
func (t *table) flush() {
	clear(t.byInside)
	clear(t.byPort)
	t.next = 0
}
