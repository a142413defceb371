package link

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"

	"github.com/klauspost/reedsolomon"
	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/kcp-go/v5"
)

// Forward error correction on a UDP link, done by the link itself (not by
// kcp-go's UDPSession) and only where the link loses packets.
//
// Without congestion control a lost KCP segment holds the send window for
// about two round trips (fast retransmit after two later ACKs, then its
// own ACK), and a window of ~1,000 segments holds ~10 holes at 1% loss,
// so the sender is nearly always waiting behind one. Parity repairs a
// hole within a group's time (a millisecond at tens of Mbit/s) instead.
//
//   - Measuring: every authenticated datagram carries its sealing counter,
//     which rises by one per datagram the peer sealed, so the receiver
//     sees the wire's loss exactly, repaired or not. It reports received
//     of expected (protocol.DataLossReport) about every reportEvery
//     while datagrams flow (fecrecv.go).
//   - Sizing: the sender smooths the reported loss and picks the fewest
//     parity shards per fecData data datagrams that leave a group
//     unrepairable with probability below fecResidual (binomial), or
//     none below fecOff. A clean link sends no parity and the receiver
//     keeps no copies; its only cost is the reports. A peer that never
//     reports (an older build, which drops the report as an unknown
//     kind) never gets parity.
//   - Grouping: the datagrams that carry KCP data (PUSH segments; pure
//     ACKs are not worth repairing) are grouped by their counters, so
//     they keep their format. A group is closed when full, or by the
//     driver's timer (fecFlush), with proportionally fewer parity shards.
//   - Repairing: the receiver keeps the last fecRing KCP datagrams while
//     parity arrives, and once a group has as many shards as data
//     datagrams it rebuilds the missing ones (Reed-Solomon, from the
//     code kcp-go already links) and feeds them to KCP as received.
const (
	fecData     = 10    // data datagrams per group
	fecOn       = 0.003 // smoothed loss at which parity starts
	fecOff      = 0.001 // and below which it stops
	fecResidual = 1e-3  // accepted chance that a group cannot be repaired
	fecSpan     = 100   // counters one group may span (< fecRing)
)

// fecSender groups what the conn seals and emits parity for each group.
type fecSender struct {
	active atomic.Bool // parity is on: sendKCP groups its datagrams

	mu     sync.Mutex // guards the fields below
	loss   float64    // smoothed loss fraction the peer reports
	parity int        // parity shards per fecData data datagrams; 0 = off
	g      *fecGroup  // the group being filled; nil: none
}

// fecGroup is a group of sealed KCP datagrams waiting for their parity.
type fecGroup struct {
	n      int
	ctr    [protocol.MaxParityData]uint64
	buf    [protocol.MaxParityData]*[]byte // [2-byte length][packet]
	maxLen int
}

// report takes a loss report from the peer and resizes the code.
func (s *fecSender) report(expected, received uint32) {
	if expected == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loss += (float64(expected-received)/float64(expected) - s.loss) / 8
	on := s.loss >= fecOn || s.parity > 0 && s.loss >= fecOff
	s.parity = 0
	if on {
		s.parity = parityFor(fecData, s.loss)
	} else if s.g != nil {
		g := s.g
		s.g = nil
		releaseGroup(g)
	}
	s.active.Store(on)
}

// parityFor returns the fewest parity shards for k data shards that a
// loss rate p leaves unrepairable (more losses than parity among k+m)
// with probability at most fecResidual.
func parityFor(k int, p float64) int {
	p = min(p, 0.3)
	for m := 1; m < protocol.MaxParityShards; m++ {
		n := k + m
		tail, term := 1.0, math.Pow(1-p, float64(n)) // P(X <= m), from P(X = 0)
		for i := 0; i <= m; i++ {
			tail -= term
			term *= float64(n-i) / float64(i+1) * p / (1 - p)
		}
		if tail <= fecResidual {
			return m
		}
	}
	return protocol.MaxParityShards
}

// fecAdd puts a sealed KCP datagram (its counter and plaintext) into the
// current group and emits the group's parity once it is full. Parity is
// sealed and sent after the lock is released, as KCP's datagrams are: the
// relay path runs the owner's function, which takes the owner's locks.
func (c *PacketConn) fecAdd(ctr uint64, p []byte) {
	if !carriesData(p) || 2+len(p)+protocol.ParityHeaderLen+protocol.MaxParityData+sealOverhead > protocol.MaxDatagram {
		return
	}
	s := &c.fec
	s.mu.Lock()
	if s.parity == 0 {
		s.mu.Unlock()
		return
	}
	var full *fecGroup
	m := s.parity
	if g := s.g; g != nil && (ctr < g.ctr[0] || ctr-g.ctr[0] >= fecSpan) {
		full, s.g = g, nil // too far apart to name by offsets: close the group
	}
	if s.g == nil {
		s.g = groupPool.Get().(*fecGroup)
	}
	g := s.g
	bp := bufPool.Get().(*[]byte)
	b := *bp
	binary.BigEndian.PutUint16(b, uint16(len(p)))
	copy(b[2:], p)
	g.ctr[g.n], g.buf[g.n] = ctr, bp
	g.n++
	g.maxLen = max(g.maxLen, len(p))
	var last *fecGroup
	if g.n == fecData {
		last, s.g = g, nil
	}
	s.mu.Unlock()
	c.fecEmit(full, m)
	c.fecEmit(last, m)
}

// fecFlush closes a partly filled group (the driver's timer calls it, so
// the last datagrams of a burst are covered too).
func (c *PacketConn) fecFlush() {
	s := &c.fec
	if !s.active.Load() {
		return
	}
	s.mu.Lock()
	g, m := s.g, s.parity
	s.g = nil
	s.mu.Unlock()
	c.fecEmit(g, m)
}

var groupPool = sync.Pool{New: func() any { return new(fecGroup) }}

func releaseGroup(g *fecGroup) {
	for i := range g.n {
		bufPool.Put(g.buf[i])
		g.buf[i] = nil
	}
	g.n, g.maxLen = 0, 0
	groupPool.Put(g)
}

// fecEmit seals and sends the parity of group g (nil: none) for a code of
// parity shards per fecData: parity × n / fecData shards for a group of
// n, at least one. It returns g's buffers to their pools.
func (c *PacketConn) fecEmit(g *fecGroup, parity int) {
	if g == nil {
		return
	}
	k := g.n
	defer releaseGroup(g)
	m := min(max((parity*k+fecData-1)/fecData, 1), protocol.MaxParityShards)
	if k == 0 || parity == 0 {
		return
	}
	// datagrams sealed by concurrent senders may have been added out of order
	for i := 1; i < k; i++ {
		for j := i; j > 0 && g.ctr[j] < g.ctr[j-1]; j-- {
			g.ctr[j], g.ctr[j-1] = g.ctr[j-1], g.ctr[j]
			g.buf[j], g.buf[j-1] = g.buf[j-1], g.buf[j]
		}
	}
	if g.ctr[k-1]-g.ctr[0] >= fecSpan {
		return
	}
	enc, err := rsCodec(k, m)
	if err != nil {
		return
	}
	size := g.maxLen + 2
	var offs [protocol.MaxParityData]uint8
	for i := range k {
		offs[i] = uint8(g.ctr[i] - g.ctr[0])
	}
	var shards [protocol.MaxParityData + protocol.MaxParityShards][]byte
	var par [protocol.MaxParityShards]*[]byte
	var hdrLen int
	for i := range k {
		b := *g.buf[i]
		clear(b[2+binary.BigEndian.Uint16(b) : size])
		shards[i] = b[:size]
	}
	for j := range m {
		par[j] = bufPool.Get().(*[]byte)
		hdr := protocol.AppendParityHeader((*par[j])[:0], protocol.Parity{Base: g.ctr[0], Offsets: offs[:k], Shards: m, Index: j})
		hdrLen = len(hdr)
		shards[k+j] = (*par[j])[hdrLen : hdrLen+size]
	}
	if enc.Encode(shards[:k+m]) == nil {
		for j := range m {
			if c.sendOnPathKind(protocol.DataParity, (*par[j])[:hdrLen+size]) == nil {
				c.ParitySent.Add(1)
			}
		}
	}
	for j := range m {
		bufPool.Put(par[j])
	}
}

// carriesData reports whether a KCP packet holds a data (PUSH) segment.
func carriesData(p []byte) bool {
	for len(p) >= kcp.IKCP_OVERHEAD {
		if p[4] == kcp.IKCP_CMD_PUSH {
			return true
		}
		n := int(binary.LittleEndian.Uint32(p[20:]))
		if n > len(p)-kcp.IKCP_OVERHEAD {
			return false
		}
		p = p[kcp.IKCP_OVERHEAD+n:]
	}
	return false
}

// rsCodec returns the Reed-Solomon code for k data and m parity shards;
// codes are built once and shared (they are safe for concurrent use).
func rsCodec(k, m int) (reedsolomon.Encoder, error) {
	key := k<<8 | m
	codecs.mu.Lock()
	defer codecs.mu.Unlock()
	if e, ok := codecs.m[key]; ok {
		return e, nil
	}
	e, err := reedsolomon.New(k, m)
	if err != nil {
		return nil, err
	}
	if codecs.m == nil {
		codecs.m = map[int]reedsolomon.Encoder{}
	}
	codecs.m[key] = e
	return e, nil
}

var codecs struct {
	mu sync.Mutex
	m  map[int]reedsolomon.Encoder
}

// sendOnPathKind seals payload as a Data datagram of kind and sends it on the
// selected path (direct or relay), like KCP's own datagrams.
func (c *PacketConn) sendOnPathKind(kind protocol.DataKind, payload []byte) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	pkt, err := c.sess.SealKind((*bp)[:0], kind, payload)
	if err != nil {
		return err
	}
	return c.sendOnPath(pkt)
}
