package link

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/big"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/kcp-go/v5"
)

// filteredPair returns two ARQ conns over PacketConns wired in memory;
// drop sees each sealed datagram (its clear header names the kind) and
// decides whether the wire loses it.
func filteredPair(t *testing.T, drop func(p []byte) bool) (a, b *arqConn) {
	return filteredPairTuned(t, drop, DefaultTuning())
}

// filteredPairTuned is filteredPair with the given tuning at both ends.
func filteredPairTuned(t *testing.T, drop func(p []byte) bool, tu Tuning) (a, b *arqConn) {
	as, rs := sessions(t)
	aAddr := netip.MustParseAddrPort("198.51.100.1:4000")
	bAddr := netip.MustParseAddrPort("203.0.113.1:7700")
	var pa, pb *PacketConn
	send := func(to **PacketConn, from netip.AddrPort) Sender {
		return func(p []byte, _ netip.AddrPort) error {
			if !drop(p) {
				(*to).Deliver(p, from)
			}
			return nil
		}
	}
	pa = NewPacketConn(as, bAddr, send(&pb, aAddr), nil, nil)
	pb = NewPacketConn(rs, aAddr, send(&pa, bAddr), nil, nil)
	a, b = newARQConn(pa, 7, tu), newARQConn(pb, 7, tu)
	t.Cleanup(func() { a.Close(); b.Close(); pa.Close(); pb.Close() })
	return a, b
}

// randomLoss loses pct percent of datagrams; with noReports it also loses
// every loss report, which is what an older peer's silence looks like.
func randomLoss(pct int64, noReports bool) func(p []byte) bool {
	return func(p []byte) bool {
		if noReports && protocol.DataKind(p[1]) == protocol.DataLossReport {
			return true
		}
		n, _ := rand.Int(rand.Reader, big.NewInt(1000))
		return n.Int64() < pct*10
	}
}

// transfer writes n random bytes from a to b and reports whether b read
// them intact (by hash) within the time limit.
func transfer(t *testing.T, a, b *arqConn, n int) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	want := sha256.Sum256(data)
	go a.Write(data)
	got := make(chan [32]byte, 1)
	go func() {
		buf := make([]byte, n)
		io.ReadFull(b, buf)
		got <- sha256.Sum256(buf)
	}()
	select {
	case g := <-got:
		if g != want {
			t.Fatal("bytes corrupted")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("transfer stalled")
	}
}

// TestFECRepairsLoss: over a wire losing 3% each way, the receiver's
// reports turn parity on, parity rebuilds at least 70% of the KCP
// datagrams the wire loses from then on, and the bytes arrive intact. A
// peer that never reports (an older build) gets no parity at all. (KCP's
// resends are logged, not compared: with no delay on the wire, ACKs of the
// datagrams after a hole reach the sender before the parity that repairs
// it, and how many resends that causes depends on scheduling.)
func TestFECRepairsLoss(t *testing.T) {
	type count struct{ parityOn, lost atomic.Uint64 }
	run := func(noReports bool) (resent uint64, n *count, a, b *arqConn) {
		n = new(count)
		loss := randomLoss(3, noReports)
		var src *PacketConn
		a, b = filteredPair(t, func(p []byte) bool {
			drop := loss(p)
			switch protocol.DataKind(p[1]) {
			case protocol.DataParity:
				n.parityOn.Store(1)
			case protocol.DataKCP:
				// KCP datagrams a sends once a has sent parity
				if drop && n.parityOn.Load() == 1 && binary.BigEndian.Uint32(p[4:8]) == src.sess.RemoteIndex {
					n.lost.Add(1)
				}
			}
			return drop
		})
		src = a.pc
		// Resends for holes (later segments were acknowledged); timeouts
		// also fire when a slow (race-enabled) run merely delays ACKs.
		holes := func() uint64 { s := kcp.DefaultSnmp.Copy(); return s.FastRetransSegs + s.EarlyRetransSegs }
		before := holes()
		transfer(t, a, b, 8<<20)
		return holes() - before, n, a, b
	}
	plain, _, pa, pb := run(true)
	if pa.pc.ParitySent.Load() != 0 || pb.pc.ParityIn.Load() != 0 {
		t.Fatalf("parity sent to a peer that never reported loss: %d sent, %d received", pa.pc.ParitySent.Load(), pb.pc.ParityIn.Load())
	}
	withFEC, n, a, b := run(false)
	rebuilt := b.pc.Recovered.Load()
	t.Logf("segments resent for holes: %d without FEC, %d with; parity sent %d; KCP datagrams lost once parity ran %d, rebuilt %d; parity dropped %d",
		plain, withFEC, a.pc.ParitySent.Load(), n.lost.Load(), rebuilt, b.pc.ParityDropped.Load())
	if a.pc.ParitySent.Load() == 0 || rebuilt*10 < n.lost.Load()*7 {
		t.Fatalf("parity sent %d; rebuilt %d of %d lost datagrams", a.pc.ParitySent.Load(), rebuilt, n.lost.Load())
	}
	if b.pc.ParityDropped.Load() != 0 {
		t.Fatalf("%d parity datagrams dropped on a wire that only loses", b.pc.ParityDropped.Load())
	}
}

// TestFECOffOnCleanLink: without loss the receiver reports none, the
// sender sends no parity and the receiver keeps no copies.
func TestFECOffOnCleanLink(t *testing.T) {
	var reports atomic.Uint64
	// Windows well below the receiver's queue (inboxLen): with the
	// default ones, a race-slowed receiver let KCP's timer resend a whole
	// window beside the first copies, the queue overflowed, and the loss
	// FEC then measured was real.
	tu := DefaultTuning()
	tu.SendWindow, tu.RecvWindow, tu.StreamBuffer = 256, 256, 256<<10
	a, b := filteredPairTuned(t, func(p []byte) bool {
		if protocol.DataKind(p[1]) == protocol.DataLossReport {
			reports.Add(1)
		}
		return false
	}, tu)
	// A report covers at least reportEvery: transfer until one came (a
	// fast machine moves 8 MiB sooner).
	for i := 0; i < 20 && (i < 1 || reports.Load() == 0); i++ {
		transfer(t, a, b, 4<<20)
		transfer(t, b, a, 4<<20)
	}
	if reports.Load() == 0 {
		t.Fatal("no loss reports: the test did not run long enough to prove anything")
	}
	for _, c := range []*arqConn{a, b} {
		if n := c.pc.ParitySent.Load(); n != 0 || c.pc.fec.active.Load() {
			t.Fatalf("clean link: %d parity datagrams sent, active %v (inbox drops %d/%d, windows %d/%d)", n, c.pc.fec.active.Load(), a.pc.Dropped.Load(), b.pc.Dropped.Load(), a.sndWnd, b.sndWnd)
		}
	}
	if b.pc.fecRx.ring != nil || a.pc.fecRx.ring != nil {
		t.Fatal("clean link: the receiver keeps copies for repair")
	}
}

// TestParityFor: the code grows with the loss it must cover.
func TestParityFor(t *testing.T) {
	for _, c := range []struct {
		loss float64
		want int
	}{{0.003, 1}, {0.01, 2}, {0.02, 3}, {0.05, 4}, {0.1, 6}, {0.2, 10}} {
		if got := parityFor(fecData, c.loss); got != c.want {
			t.Errorf("parityFor(%d, %g) = %d, want %d", fecData, c.loss, got, c.want)
		}
	}
}

// TestParityMalformedDropped: parity that does not parse, that
// contradicts its group, or whose rebuilt datagram is not a KCP packet is
// dropped and counted; a datagram of a kind this build does not know is
// counted too. Nothing reaches KCP and nothing panics.
func TestParityMalformedDropped(t *testing.T) {
	a, b := filteredPair(t, func([]byte) bool { return false })
	transfer(t, a, b, 64<<10) // the receiver has datagrams in its counter space
	seal := func(kind protocol.DataKind, payload []byte) {
		p, err := a.pc.sess.SealKind(nil, kind, payload)
		if err != nil {
			t.Fatal(err)
		}
		b.pc.Deliver(p, netip.MustParseAddrPort("198.51.100.1:4000"))
	}
	hdr := func(base uint64, offs []uint8, m, idx int) []byte {
		return protocol.AppendParityHeader(nil, protocol.Parity{Base: base, Offsets: offs, Shards: m, Index: idx})
	}
	// A lone datagram (counter far ahead) whose "repair" from one parity
	// shard is its own bytes: 2-byte length 3, not a KCP packet.
	garbage := append(hdr(1<<40, []uint8{0}, 1, 0), 0, 3, 1, 2, 3)
	cases := [][]byte{
		{1, 2, 3}, // too short
		append(hdr(5, []uint8{0, 0}, 1, 0), 0, 0, 0),   // offsets do not rise
		append(hdr(6, []uint8{0, 200}, 1, 0), 0, 0, 0), // spans more than the ring
		garbage,
		append(hdr(1<<40, []uint8{0}, 1, 0), 0, 3, 1), // same group, other size
	}
	before := b.pc.ParityDropped.Load()
	for _, p := range cases {
		seal(protocol.DataParity, p)
	}
	seal(protocol.DataKind(0x7f), []byte("from a newer build"))
	deadline := time.Now().Add(5 * time.Second)
	for b.pc.ParityDropped.Load()-before < uint64(len(cases)) || b.pc.UnknownKind.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("dropped %d of %d malformed parity, %d unknown kinds", b.pc.ParityDropped.Load()-before, len(cases), b.pc.UnknownKind.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b.pc.Recovered.Load() != 0 {
		t.Fatalf("%d datagrams rebuilt from malformed parity", b.pc.Recovered.Load())
	}
	transfer(t, a, b, 64<<10) // the link still works
}

// TestCarriesData: only datagrams with a PUSH segment are protected.
func TestCarriesData(t *testing.T) {
	seg := func(cmd byte, n int) []byte {
		s := make([]byte, kcp.IKCP_OVERHEAD+n)
		s[4] = cmd
		binary.LittleEndian.PutUint32(s[20:], uint32(n))
		return s
	}
	ack, push := seg(kcp.IKCP_CMD_ACK, 0), seg(kcp.IKCP_CMD_PUSH, 5)
	if carriesData(append(bytes.Clone(ack), ack...)) {
		t.Fatal("ACKs only: protected")
	}
	if !carriesData(append(bytes.Clone(ack), push...)) {
		t.Fatal("ACK then PUSH: not protected")
	}
	if carriesData(seg(kcp.IKCP_CMD_ACK, 100)[:30]) {
		t.Fatal("a truncated segment: protected")
	}
}

// FuzzParityRepair feeds arbitrary parity payloads to a receiver that
// keeps a few datagrams: nothing panics, and whatever reaches KCP is a
// plausible KCP packet (at least a segment header) rebuilt from parity.
func FuzzParityRepair(f *testing.F) {
	f.Add(append(protocol.AppendParityHeader(nil, protocol.Parity{Base: 100, Offsets: []uint8{0, 1, 2}, Shards: 2}), make([]byte, 40)...))
	f.Add(append(protocol.AppendParityHeader(nil, protocol.Parity{Base: 103, Offsets: []uint8{0, 2}, Shards: 1}), make([]byte, 30)...))
	f.Add(append(protocol.AppendParityHeader(nil, protocol.Parity{Base: 1 << 62, Offsets: []uint8{0}, Shards: 3, Index: 2}), 0, 30, 1, 2, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := NewPacketConn(nil, netip.MustParseAddrPort("192.0.2.1:1"), func([]byte, netip.AddrPort) error { return nil }, nil, nil)
		c.fecRx.ring = make([]fecSlot, fecRing)
		for ctr := uint64(100); ctr < 106; ctr++ { // kept datagrams: counters 100-105, 24-40 bytes
			sealed := binary.BigEndian.AppendUint64(make([]byte, 8), ctr)
			c.fecKeep(sealed, make([]byte, 24+ctr%17), 1)
		}
		sink := func(p []byte, _ bool) {
			if len(p) < kcp.IKCP_OVERHEAD {
				t.Fatalf("a %d-byte packet reached KCP", len(p))
			}
		}
		c.fecParity(b, 1, sink)
		c.fecParity(b, 1, sink) // the same again: a duplicate shard
	})
}

// TestLossMeterToleratesReordering: the receiver's loss meter reports no
// loss for datagrams that arrive out of counter order within the
// reordering allowance, even across a report's edge, and still reports
// the ones that never come. Before the allowance a datagram counted
// missing at one report and arriving just after it was never credited.
func TestLossMeterToleratesReordering(t *testing.T) {
	as, rs := sessions(t)
	var expected, received uint64
	pc := NewPacketConn(as, netip.MustParseAddrPort("203.0.113.1:7700"), func(p []byte, _ netip.AddrPort) error {
		if protocol.DataKind(p[1]) == protocol.DataLossReport {
			out, err := rs.Open(nil, p)
			if err != nil {
				t.Fatal(err)
			}
			e, g, err := protocol.ParseLossReport(out)
			if err != nil {
				t.Fatal(err)
			}
			expected += uint64(e)
			received += uint64(g)
		}
		return nil
	}, nil, nil)
	defer pc.Close()
	const n = 20000
	order := make([]uint64, n)
	for i := range order {
		order[i] = uint64(i)
	}
	// Swap neighbours up to 24 apart: every datagram within the allowance
	// of where it belongs.
	for i := 37; i+24 < n; i += 37 { // the first stays first: the meter starts at it
		order[i], order[i+24] = order[i+24], order[i]
	}
	// run feeds the counters in order, losing those lost says, and returns
	// how many datagrams the reports said were missing and how many of
	// the counters they covered were lost (reports cover counters from 0
	// up to a point: the tail after the last one waits for the next).
	run := func(lost func(ctr uint64) bool) (missing, dropped uint64) {
		expected, received = 0, 0
		pc.fecRx = fecReceiver{}
		now := int64(1)
		for i, ctr := range order {
			if i%100 == 0 {
				now += int64(time.Millisecond) // a report about every 50 ms
			}
			if lost(ctr) {
				continue
			}
			pc.fecMeter(protocol.AppendDataHeader(nil, protocol.DataHeader{Kind: protocol.DataKCP, Counter: ctr}), now)
		}
		if expected < n/2 {
			t.Fatalf("reports covered %d of %d datagrams", expected, n)
		}
		for ctr := range expected {
			if lost(ctr) {
				dropped++
			}
		}
		return expected - received, dropped
	}
	if missing, _ := run(func(uint64) bool { return false }); missing != 0 {
		t.Fatalf("reordered but complete: %d datagrams reported missing", missing)
	}
	if missing, dropped := run(func(ctr uint64) bool { return ctr%100 == 7 }); missing != dropped || dropped == 0 {
		t.Fatalf("%d datagrams reported missing, %d lost among those the reports covered", missing, dropped)
	}
}
