package link

import (
	"encoding/binary"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/kcp-go/v5"
)

// The receiving half of the link's FEC (see fec.go): the loss meter that
// reports to the peer, and the decoder that repairs groups. Both run on
// the goroutine that opens the conn's datagrams (the drain goroutine of
// rxqueue.go, one at a time), so they need no lock.

const (
	fecRing      = 128                   // KCP datagrams kept for repair while parity arrives
	fecGroups    = 4                     // groups whose parity is being collected
	reportEvery  = 50 * time.Millisecond // at most one loss report per this
	reportMin    = 64                    // datagrams a report covers at least
	fecKeepAlive = 5 * time.Second       // without parity for this long, the copies go
	// reorderAllowance is how far behind the highest counter seen a
	// counter may still arrive before the meter calls it missing: a report
	// covers the counters up to that far back, and the newest ones wait
	// for the next. Datagrams sealed by different goroutines (another
	// conversation on the conn, a keepalive, a loss report) reach the wire
	// a little out of counter order; counted missing at a report's edge
	// and then clipped when they came, a handful of them at 8,000
	// datagrams per report moved the smoothed loss past fecOn.
	reorderAllowance = 64
	seenBits         = 256 // counters below the highest whose arrival is remembered
)

type fecReceiver struct {
	// loss meter: counters of the peer's datagrams since the last report
	started  bool
	hi, base uint64                // one past the highest counter seen; the first counter the next report covers
	got      uint32                // datagrams at or past base authenticated since the last report
	reported int64                 // unix nanos of the last report
	seen     [seenBits / 64]uint64 // arrived, for counters [hi-seenBits, hi): bit ctr%seenBits

	ring       []fecSlot // nil until parity arrives
	groups     [fecGroups]rxGroup
	next       int   // the group slot reused next
	lastParity int64 // unix nanos
}

type fecSlot struct {
	ctr uint64
	buf *[]byte // [2-byte length][KCP packet]; nil: empty
}

type rxGroup struct {
	used bool
	done bool // repaired, or every data datagram arrived
	base uint64
	k, m int
	size int // shard length
	offs [protocol.MaxParityData]uint8
	par  [protocol.MaxParityShards]*[]byte
	have int
}

// fecMeter counts one authenticated datagram from the peer (its counter
// is the clear header's) and sends a loss report when one is due.
func (c *PacketConn) fecMeter(sealed []byte, now int64) {
	r := &c.fecRx
	ctr := protocol.DataCounter(sealed)
	if !r.started {
		r.started, r.hi, r.base, r.reported = true, ctr, ctr, now
	}
	if ctr < r.base {
		return // later than the allowance: a report has counted it missing
	}
	r.mark(ctr)
	r.got++
	if r.got < reportMin || now-r.reported < int64(reportEvery) {
		return
	}
	cut := r.hi - min(reorderAllowance, r.hi-r.base)
	if cut == r.base {
		return
	}
	waiting := r.arrived(cut, r.hi) // the next report's
	expected := cut - r.base
	got := uint64(r.got - waiting)
	if expected > 1<<31 { // a peer that skipped ahead: start over
		expected = got
	}
	var b [protocol.LossReportLen]byte
	c.sendOnPathKind(protocol.DataLossReport, protocol.AppendLossReport(b[:0], uint32(expected), uint32(min(got, expected))))
	r.base, r.got, r.reported = cut, waiting, now
}

// mark remembers that counter ctr arrived, moving hi past it (and
// forgetting what was remembered of the counters it skips).
func (r *fecReceiver) mark(ctr uint64) {
	if ctr >= r.hi {
		if ctr-r.hi >= seenBits {
			clear(r.seen[:])
		} else {
			for k := r.hi; k < ctr; k++ {
				w, bit := seenBit(k)
				r.seen[w] &^= bit
			}
		}
		r.hi = ctr + 1
	}
	if r.hi-ctr <= seenBits {
		w, bit := seenBit(ctr)
		r.seen[w] |= bit
	}
}

// seenBit is where counter k's arrival is kept in seen.
func seenBit(k uint64) (word int, bit uint64) {
	return int(k / 64 % (seenBits / 64)), 1 << (k % 64)
}

// arrived counts the counters in [from, to) that arrived; to-from is at
// most seenBits and to is hi.
func (r *fecReceiver) arrived(from, to uint64) uint32 {
	n := uint32(0)
	for k := from; k < to; k++ {
		if w, bit := seenBit(k); r.seen[w]&bit != 0 {
			n++
		}
	}
	return n
}

// fecKeep copies an authenticated KCP datagram into the ring while the
// peer sends parity, and frees the ring once it has stopped.
func (c *PacketConn) fecKeep(sealed, p []byte, now int64) {
	r := &c.fecRx
	if r.ring == nil {
		return
	}
	if now-r.lastParity > int64(fecKeepAlive) {
		c.fecRelease()
		return
	}
	ctr := protocol.DataCounter(sealed)
	s := &r.ring[ctr%fecRing]
	if s.buf == nil {
		s.buf = bufPool.Get().(*[]byte)
	}
	s.ctr = ctr
	binary.BigEndian.PutUint16(*s.buf, uint16(len(p)))
	copy((*s.buf)[2:], p)
}

// fecRelease frees the ring and the collected parity.
func (c *PacketConn) fecRelease() {
	r := &c.fecRx
	for i := range r.ring {
		if r.ring[i].buf != nil {
			bufPool.Put(r.ring[i].buf)
		}
	}
	r.ring = nil
	for i := range r.groups {
		r.groups[i].reset()
	}
}

func (g *rxGroup) reset() {
	for j := range g.par {
		if g.par[j] != nil {
			bufPool.Put(g.par[j])
			g.par[j] = nil
		}
	}
	*g = rxGroup{}
}

// fecParity takes a parity datagram's payload: it is kept with its group,
// and once the group has enough shards its missing KCP datagrams are
// rebuilt and handed to sink as received ones. A malformed one, or one
// that contradicts its group, is dropped and counted.
func (c *PacketConn) fecParity(p []byte, now int64, sink func([]byte, bool)) {
	c.ParityIn.Add(1)
	par, err := protocol.ParseParity(p)
	k := len(par.Offsets)
	if err != nil || len(par.Shard) > protocol.MaxDatagram || int(par.Offsets[k-1]) >= fecRing {
		c.ParityDropped.Add(1)
		return
	}
	r := &c.fecRx
	if r.ring == nil {
		r.ring = make([]fecSlot, fecRing)
	}
	r.lastParity = now
	g := r.group(par, len(par.Shard))
	if g == nil {
		c.ParityDropped.Add(1)
		return
	}
	if g.done || g.par[par.Index] != nil {
		return
	}
	bp := bufPool.Get().(*[]byte)
	copy(*bp, par.Shard)
	g.par[par.Index] = bp
	g.have++
	present := 0
	for i := range k {
		if r.slot(g.base+uint64(g.offs[i])) != nil {
			present++
		}
	}
	switch {
	case present == k:
		g.done = true // nothing lost
	case present+g.have >= k:
		g.done = true
		c.fecRepair(g, sink)
	}
	if g.done {
		for j := range g.par {
			if g.par[j] != nil {
				bufPool.Put(g.par[j])
				g.par[j] = nil
			}
		}
	}
}

// group returns the group par belongs to, starting one in the oldest slot
// if it is new; nil if par contradicts the group of its base.
func (r *fecReceiver) group(par protocol.Parity, size int) *rxGroup {
	k := len(par.Offsets)
	for i := range r.groups {
		g := &r.groups[i]
		if !g.used || g.base != par.Base {
			continue
		}
		if g.k != k || g.m != par.Shards || g.size != size || string(g.offs[:k]) != string(par.Offsets) {
			return nil
		}
		return g
	}
	g := &r.groups[r.next]
	r.next = (r.next + 1) % fecGroups
	g.reset()
	g.used, g.base, g.k, g.m, g.size = true, par.Base, k, par.Shards, size
	copy(g.offs[:], par.Offsets)
	return g
}

// slot returns the kept datagram sealed with counter ctr, or nil.
func (r *fecReceiver) slot(ctr uint64) *fecSlot {
	s := &r.ring[ctr%fecRing]
	if s.buf == nil || s.ctr != ctr {
		return nil
	}
	return s
}

// fecRepair rebuilds the group's missing data datagrams and hands each
// one that decodes to a plausible KCP packet to sink.
func (c *PacketConn) fecRepair(g *rxGroup, sink func([]byte, bool)) {
	r := &c.fecRx
	enc, err := rsCodec(g.k, g.m)
	if err != nil {
		c.ParityDropped.Add(1)
		return
	}
	var shards [protocol.MaxParityData + protocol.MaxParityShards][]byte
	var missing [protocol.MaxParityData]*[]byte
	defer func() {
		for _, bp := range missing {
			if bp != nil {
				bufPool.Put(bp)
			}
		}
	}()
	for i := range g.k {
		s := r.slot(g.base + uint64(g.offs[i]))
		if s == nil {
			missing[i] = bufPool.Get().(*[]byte)
			shards[i] = (*missing[i])[:0]
			continue
		}
		b := *s.buf
		n := 2 + int(binary.BigEndian.Uint16(b))
		if n > g.size { // a datagram longer than the parity: not this group's
			c.ParityDropped.Add(1)
			return
		}
		clear(b[n:g.size])
		shards[i] = b[:g.size]
	}
	for j := range g.m {
		if g.par[j] != nil {
			shards[g.k+j] = (*g.par[j])[:g.size]
		}
	}
	if enc.ReconstructData(shards[:g.k+g.m]) != nil {
		c.ParityDropped.Add(1)
		return
	}
	for i := range g.k {
		if missing[i] == nil {
			continue
		}
		b := shards[i]
		n := int(binary.BigEndian.Uint16(b))
		if n < kcp.IKCP_OVERHEAD || 2+n > len(b) {
			c.ParityDropped.Add(1)
			continue
		}
		c.Recovered.Add(1)
		c.BytesIn.Add(uint64(n))
		sink(b[2:2+n], false)
	}
}
