package netsim

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// NAT is a NAT box: one external address on an outer network and an inside
// network behind it, translating UDP by its NATConfig. Inside networks
// may hold further NATs, so a home NAT behind a carrier NAT (CGNAT, RFC
// 6598 addresses) is two AddNAT calls.
//
// The uplink between the box and the outer network carries the loss and
// delay: an outbound packet is translated (its mapping made or refreshed)
// before it may be lost, an inbound one may be lost before it reaches the
// box, as on a lossy WAN link.
type NAT struct {
	w      *world
	cfg    NATConfig
	ext    netip.Addr
	outer  *Network
	inside *Network

	mu  sync.Mutex // guards tab and rng
	tab table
	rng *rand.Rand // loss and jitter

	out, in, hairpinned, filtered, noMapping, lost, exhausted atomic.Uint64
}

// NATStats counts what a NAT did with packets.
type NATStats struct {
	Out, In    uint64 // translated each way
	Hairpinned uint64 // internal to internal through an external mapping (REQ-9)
	Filtered   uint64 // inbound refused by filtering (RFC 4787 §5), or hairpin off
	NoMapping  uint64 // inbound to no live mapping: never made, expired or flushed
	Lost       uint64 // dropped on the uplink by Loss
	Exhausted  uint64 // outbound without a free external port
}

// AddNAT puts a NAT box with external address ext on n and returns it;
// its inside network starts empty.
func (n *Network) AddNAT(ext netip.Addr, cfg NATConfig) (*NAT, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	t := &NAT{w: n.w, cfg: cfg, ext: ext, outer: n, tab: newTable(cfg),
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x6c696e6b))}
	t.inside = newNetwork(n.w, t)
	if err := n.attach(ext, t); err != nil {
		return nil, err
	}
	return t, nil
}

// Inside is the network behind the NAT.
func (t *NAT) Inside() *Network { return t.inside }

// Addr is the NAT's external address.
func (t *NAT) Addr() netip.Addr { return t.ext }

// Config is the NAT's behaviour, defaults filled in.
func (t *NAT) Config() NATConfig { return t.cfg }

func (t *NAT) String() string {
	return fmt.Sprintf("NAT %v (%v, %v, %v ports)", t.ext, t.cfg.Mapping, t.cfg.Filtering, t.cfg.Ports)
}

// Mapped returns the external address a packet from internal to remote
// leaves with, if a live mapping exists for it.
func (t *NAT) Mapped(internal, remote netip.AddrPort) (netip.AddrPort, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.tab.lookup(internal, remote, time.Now())
	if m == nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(t.ext, m.port), true
}

// Flush forgets every mapping, as `conntrack -F` or a router reboot does.
func (t *NAT) Flush() {
	t.mu.Lock()
	t.tab.flush()
	t.mu.Unlock()
}

// Stats returns the NAT's counters.
func (t *NAT) Stats() NATStats {
	return NATStats{Out: t.out.Load(), In: t.in.Load(), Hairpinned: t.hairpinned.Load(), Filtered: t.filtered.Load(),
		NoMapping: t.noMapping.Load(), Lost: t.lost.Load(), Exhausted: t.exhausted.Load()}
}

// outbound takes a packet from the inside network toward anywhere not on
// it.
func (t *NAT) outbound(p packet) {
	now := time.Now()
	if p.dst.Addr() == t.ext {
		t.hairpin(p, now)
		return
	}
	t.mu.Lock()
	m := t.tab.outbound(p.src, p.dst, now)
	var port uint16
	if m != nil {
		port = m.port
	}
	t.mu.Unlock()
	if m == nil {
		t.exhausted.Add(1)
		return
	}
	t.out.Add(1)
	p.src = netip.AddrPortFrom(t.ext, port)
	t.uplink(func() { t.outer.route(p) })
}

// deliver takes a packet from the outer network addressed to the NAT.
func (t *NAT) deliver(p packet) {
	t.uplink(func() { t.inbound(p) })
}

func (t *NAT) inbound(p packet) {
	now := time.Now()
	t.mu.Lock()
	m := t.tab.byExternal(p.dst.Port(), now)
	ok := m != nil && t.tab.permits(m, p.src, now)
	var internal netip.AddrPort
	if ok {
		internal = m.internal
		if t.cfg.InboundRefresh { // REQ-6 a
			m.last = now
			if _, known := m.peers[p.src]; known {
				m.peers[p.src] = now
			}
		}
	}
	t.mu.Unlock()
	switch {
	case m == nil:
		t.noMapping.Add(1)
	case !ok:
		t.filtered.Add(1)
	default:
		t.in.Add(1)
		p.dst = internal
		t.inside.route(p)
	}
}

// hairpin turns a packet from the inside to the NAT's own external address
// back inside (REQ-9), from the sender's mapping toward that address
// (REQ-9 a: "External source IP address and port"), so the receiver sees
// the address it would see from outside. As in the lab, hairpinned packets
// are not filtered and do not cross the uplink.
func (t *NAT) hairpin(p packet, now time.Time) {
	if !t.cfg.Hairpin {
		t.filtered.Add(1)
		return
	}
	t.mu.Lock()
	var to, from netip.AddrPort
	target := t.tab.byExternal(p.dst.Port(), now)
	if target != nil {
		to = target.internal
		if m := t.tab.outbound(p.src, p.dst, now); m != nil {
			from = netip.AddrPortFrom(t.ext, m.port)
		}
	}
	t.mu.Unlock()
	switch {
	case target == nil:
		t.noMapping.Add(1)
	case !from.IsValid():
		t.exhausted.Add(1)
	default:
		t.hairpinned.Add(1)
		p.src, p.dst = from, to
		t.inside.route(p)
	}
}

// uplink applies loss and delay to one crossing of the NAT's uplink, then
// runs deliver (on the scheduler's goroutine when delayed).
func (t *NAT) uplink(deliver func()) {
	if t.cfg.Loss == 0 && t.cfg.Delay == 0 && t.cfg.Jitter == 0 {
		deliver()
		return
	}
	t.mu.Lock()
	lost := t.cfg.Loss > 0 && t.rng.Float64() < t.cfg.Loss
	d := t.cfg.Delay
	if t.cfg.Jitter > 0 {
		d += time.Duration(t.rng.Int64N(int64(2*t.cfg.Jitter)+1)) - t.cfg.Jitter
	}
	t.mu.Unlock()
	if lost {
		t.lost.Add(1)
		return
	}
	if d <= 0 {
		deliver()
		return
	}
	t.w.sched.after(d, deliver)
}
