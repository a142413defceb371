package link

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/kcp-go/v5"
)

// TestKCPCoreFields checks the offsets kcpcore.go uses against kcp-go's
// struct: name, type, offset, and only 32-bit fields before them (so the
// offsets hold on 32-bit targets too).
func TestKCPCoreFields(t *testing.T) {
	typ := reflect.TypeFor[kcp.KCP]()
	want := map[string]struct {
		off  uintptr
		kind reflect.Kind
	}{
		"snd_una": {kcpOffUna, reflect.Uint32},
		"rcv_nxt": {kcpOffRcvNxt, reflect.Uint32},
		"rmt_wnd": {kcpOffRmtWnd, reflect.Uint32},
		"incr":    {kcpOffUna + 4*(kcpFrozenWords-1), reflect.Uint32},
		"rx_srtt": {kcpOffSRTT, reflect.Int32},
		"probe":   {kcpOffProbe, reflect.Uint32},
		"updated": {kcpOffUpdated, reflect.Uint32},
		"stream":  {kcpOffStream, reflect.Int32},
	}
	found := 0
	for i := range typ.NumField() {
		f := typ.Field(i)
		if found == len(want) {
			break
		}
		if k := f.Type.Kind(); k != reflect.Int32 && k != reflect.Uint32 {
			t.Fatalf("KCP.%s (%s) comes before the fields the driver uses: their offsets would differ between 32- and 64-bit targets", f.Name, k)
		}
		if w, ok := want[f.Name]; ok {
			found++
			if f.Offset != w.off || f.Type.Kind() != w.kind {
				t.Fatalf("KCP.%s is %s at offset %d; kcpcore.go has %s at %d", f.Name, f.Type.Kind(), f.Offset, w.kind, w.off)
			}
		}
	}
	if found != len(want) {
		t.Fatalf("found %d of the %d KCP fields the driver uses", found, len(want))
	}
}

// linkedConns returns two PacketConns wired to each other in memory;
// drop, when set, decides per datagram whether the wire loses it.
func linkedConns(t testing.TB, drop func() bool) (a, b *PacketConn) {
	as, rs := sessions(t.(*testing.T))
	aAddr := netip.MustParseAddrPort("198.51.100.1:4000")
	bAddr := netip.MustParseAddrPort("203.0.113.1:7700")
	send := func(to **PacketConn, from netip.AddrPort) Sender {
		return func(p []byte, _ netip.AddrPort) error {
			if drop == nil || !drop() {
				(*to).Deliver(p, from)
			}
			return nil
		}
	}
	a = NewPacketConn(as, bAddr, send(&b, aAddr), nil, nil)
	b = NewPacketConn(rs, aAddr, send(&a, bAddr), nil, nil)
	return a, b
}

// arqPair returns two ARQ conns over linked PacketConns.
func arqPair(t *testing.T, tn Tuning, drop func() bool) (a, b *arqConn) {
	pa, pb := linkedConns(t, drop)
	a, b = newARQConn(pa, 7, tn), newARQConn(pb, 7, tn)
	t.Cleanup(func() { a.Close(); b.Close(); pa.Close(); pb.Close() })
	return a, b
}

// lossy drops about pct percent of datagrams.
func lossy(pct int64) func() bool {
	return func() bool {
		n, _ := rand.Int(rand.Reader, big.NewInt(100))
		return n.Int64() < pct
	}
}

// TestARQTransferUnderLoss moves 2 MiB each way at once over a wire that
// loses 10% of datagrams: only the driver's timer retransmits what is
// lost, so the bytes arriving intact prove it runs while data is in flight
// (and the tick count says it did), and stops once the link is idle.
func TestARQTransferUnderLoss(t *testing.T) {
	a, b := arqPair(t, DefaultTuning(), lossy(10))
	send := func(c *arqConn, p []byte) chan error {
		done := make(chan error, 1)
		go func() { _, err := c.Write(p); done <- err }()
		return done
	}
	pa, pb := make([]byte, 2<<20), make([]byte, 2<<20)
	rand.Read(pa)
	rand.Read(pb)
	wa, wb := send(a, pa), send(b, pb)
	got := func(c *arqConn, n int) chan []byte {
		out := make(chan []byte, 1)
		go func() {
			buf := make([]byte, n)
			io.ReadFull(c, buf)
			out <- buf
		}()
		return out
	}
	ga, gb := got(b, len(pa)), got(a, len(pb))
	for _, ch := range []struct {
		got  chan []byte
		want []byte
	}{{ga, pa}, {gb, pb}} {
		select {
		case g := <-ch.got:
			if !bytes.Equal(g, ch.want) {
				t.Fatal("bytes corrupted")
			}
		case <-time.After(60 * time.Second):
			t.Fatal("transfer stalled")
		}
	}
	if err := <-wa; err != nil {
		t.Fatal(err)
	}
	if err := <-wb; err != nil {
		t.Fatal(err)
	}
	if a.ticks.Load() == 0 || b.ticks.Load() == 0 {
		t.Fatalf("ticks %d, %d: lost datagrams were recovered without the timer?", a.ticks.Load(), b.ticks.Load())
	}
	waitIdle(t, a, b)
}

// waitIdle waits until neither conn has anything in flight, then checks
// that no timer fires for the next two seconds.
func waitIdle(t *testing.T, conns ...*arqConn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range conns {
		for {
			c.mu.Lock()
			busy := c.kcp.WaitSnd() > 0 || c.armed
			c.mu.Unlock()
			if !busy {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("still in flight after 10 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	before := make([]uint64, len(conns))
	for i, c := range conns {
		before[i] = c.ticks.Load()
	}
	time.Sleep(2 * time.Second)
	for i, c := range conns {
		if n := c.ticks.Load() - before[i]; n != 0 {
			t.Fatalf("an idle conn's timer fired %d times in 2 s", n)
		}
	}
}

// TestARQIdleNoTimer: after an exchange (including a lost datagram that
// the timer had to resend), an idle link arms no timer and fires none.
func TestARQIdleNoTimer(t *testing.T) {
	var first atomic.Bool
	a, b := arqPair(t, DefaultTuning(), func() bool { return first.CompareAndSwap(false, true) })
	a.Write([]byte("ping"))
	buf := make([]byte, 16)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if a.ticks.Load() == 0 {
		t.Fatal("the lost first datagram came back without a timer retransmission")
	}
	waitIdle(t, a, b)
}

// TestARQStreamMode: writes queued behind a full window are packed into
// one segment (stream mode), as UDPSession.SetStreamMode(true) does.
func TestARQStreamMode(t *testing.T) {
	a, _ := arqPair(t, DefaultTuning(), func() bool { return true })
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kcp.Send([]byte("one"))
	a.kcp.Send([]byte("two"))
	if n := a.kcp.WaitSnd(); n != 1 {
		t.Fatalf("two small sends queued %d segments, want 1 (stream mode)", n)
	}
}

// TestARQSmallReads: a segment larger than the reader's buffer is read in
// pieces, in order.
func TestARQSmallReads(t *testing.T) {
	a, b := arqPair(t, DefaultTuning(), nil)
	msg := bytes.Repeat([]byte("0123456789"), 100)
	a.Write(msg)
	var got []byte
	buf := make([]byte, 7)
	for len(got) < len(msg) {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("pieces out of order")
	}
}

// TestARQBlockingAndClose: Write blocks while the send window is full
// (nothing is ever acknowledged), Read blocks while nothing arrived, Close
// releases both with io.ErrClosedPipe, and both keep returning it.
func TestARQBlockingAndClose(t *testing.T) {
	tn := DefaultTuning()
	tn.SendWindow = 4
	a, _ := arqPair(t, tn, func() bool { return true })
	for range 2 {
		a.Write(make([]byte, 2000)) // two segments each: the window is full after the second
	}
	werr, rerr := make(chan error, 1), make(chan error, 1)
	go func() { _, err := a.Write([]byte("x")); werr <- err }()
	go func() { _, err := a.Read(make([]byte, 10)); rerr <- err }()
	select {
	case err := <-werr:
		t.Fatalf("Write on a full window returned %v", err)
	case err := <-rerr:
		t.Fatalf("Read with nothing received returned %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	a.Close()
	for _, ch := range []chan error{werr, rerr} {
		select {
		case err := <-ch:
			if !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("after Close: %v, want io.ErrClosedPipe", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not release a blocked call")
		}
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write after Close: %v", err)
	}
	a.mu.Lock()
	armed := a.armed
	a.mu.Unlock()
	if armed {
		t.Fatal("timer armed after Close")
	}
}

// TestARQSendsOutsideLock: the driver sends KCP's packets after releasing
// its lock, so an owner whose send path takes a lock of its own may ask
// for SRTT under that lock (a peer session's relay path does). With the
// sends under the driver's lock, this transfer deadlocked.
func TestARQSendsOutsideLock(t *testing.T) {
	var owner sync.Mutex
	as, rs := sessions(t)
	var pa, pb *PacketConn
	pa = NewPacketConn(as, netip.AddrPort{}, func(p []byte, _ netip.AddrPort) error {
		owner.Lock()
		defer owner.Unlock()
		pb.DeliverRelayed(p)
		return nil
	}, nil, nil)
	pb = NewPacketConn(rs, netip.AddrPort{}, func(p []byte, _ netip.AddrPort) error { pa.DeliverRelayed(p); return nil }, nil, nil)
	a, b := newARQConn(pa, 3, DefaultTuning()), newARQConn(pb, 3, DefaultTuning())
	defer func() { a.Close(); b.Close(); pa.Close(); pb.Close() }()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			owner.Lock()
			a.srtt()
			owner.Unlock()
		}
	}()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		_, err := io.ReadFull(b, buf)
		done <- err
	}()
	go a.Write(make([]byte, 1<<20))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("transfer deadlocked")
	}
}

// TestFECLinkUsesSession: with FEC configured the link runs on kcp-go's
// UDPSession, whose reader takes datagrams from the queue through
// ReadFrom; a stream crosses it intact over a wire losing 5%.
func TestFECLinkUsesSession(t *testing.T) {
	pa, pb := linkedConns(t, lossy(5))
	tn := DefaultTuning()
	tn.DataShards, tn.ParityShards = 10, 3
	la, err := NewUDPLink(pa, 9, tn, false)
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	lb, err := NewUDPLink(pb, 9, tn, true)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	if la.arq != nil {
		t.Fatal("FEC link runs on the ARQ driver, which has no FEC")
	}
	msg := make([]byte, 256<<10)
	rand.Read(msg)
	go func() {
		st, err := la.OpenStream()
		if err == nil {
			st.Write(msg)
		}
	}()
	st, err := lb.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(st, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("FEC link: %v", err)
	}
}

// TestARQWriteDuringBatchFlushesAtItsEnd: a Write while a receive batch
// is being input sends nothing itself; the batch's end flushes it (with
// the batch's ACKs), and if the batch never ends the timer does. Outside
// a batch a Write sends at once.
func TestARQWriteDuringBatchFlushesAtItsEnd(t *testing.T) {
	var sent atomic.Int64
	a, b := arqPair(t, DefaultTuning(), func() bool { sent.Add(1); return false })
	// A window-size segment from b's side: valid KCP, no data, no ACK.
	wins := binary.LittleEndian.AppendUint32(nil, 7)
	wins = append(wins, kcp.IKCP_CMD_WINS, 0, 0, 1)
	wins = append(wins, make([]byte, 16)...)
	read := func(want string) {
		t.Helper()
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		n, err := b.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, want)
		}
	}

	a.input(wins, false)
	a.Write([]byte("in batch"))
	if n := sent.Load(); n != 0 {
		t.Fatalf("a Write within a batch sent %d datagrams before the batch ended", n)
	}
	a.input(nil, true)
	if sent.Load() == 0 {
		t.Fatal("the batch's end did not flush the Write")
	}
	read("in batch")

	waitIdle(t, a, b)
	before := sent.Load()
	a.Write([]byte("alone"))
	if sent.Load() == before {
		t.Fatal("a Write outside a batch was not sent at once")
	}
	read("alone")

	waitIdle(t, a, b)
	a.input(wins, false) // a batch whose end never comes
	a.Write([]byte("timer"))
	read("timer")
	a.input(nil, true)
}

// TestARQSendsInFlushOrder: eight streams writing at once keep KCP's send
// window full, so a Write's flush and an input batch's flush both send
// new segments; they leave in the order KCP numbered them (the sealing
// counters of the KCP datagrams reach the wire in increasing order) and,
// on a wire that loses and reorders nothing, no segment is resent. When
// each flushing goroutine sent its own packets after the lock, they raced
// to the wire: reordered datagrams and fast retransmissions of segments
// that were never lost (3.7 % of a relay's segments with 8 streams).
func TestARQSendsInFlushOrder(t *testing.T) {
	as, rs := sessions(t)
	aAddr := netip.MustParseAddrPort("198.51.100.1:4000")
	bAddr := netip.MustParseAddrPort("203.0.113.1:7700")
	var a, b *PacketConn
	var mu sync.Mutex
	var last uint64
	var inversions, sent int
	a = NewPacketConn(as, bAddr, func(p []byte, _ netip.AddrPort) error {
		if protocol.DataKind(p[1]) == protocol.DataKCP {
			mu.Lock()
			if ctr := protocol.DataCounter(p); ctr < last {
				inversions++
			} else {
				last = ctr
			}
			sent++
			mu.Unlock()
		}
		b.Deliver(p, aAddr)
		return nil
	}, nil, nil)
	b = NewPacketConn(rs, aAddr, func(p []byte, _ netip.AddrPort) error { a.Deliver(p, bAddr); return nil }, nil, nil)
	la, lb := udpLinks(t, a, b)

	const streams, each = 8, 2 << 20
	before := kcp.DefaultSnmp.Copy()
	sums := make(chan [32]byte, streams)
	go func() {
		for range streams {
			st, err := lb.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				h := sha256.New()
				io.Copy(h, st)
				sums <- [32]byte(h.Sum(nil))
			}()
		}
	}()
	payload := make([]byte, each)
	rand.Read(payload)
	want := sha256.Sum256(payload)
	var wg sync.WaitGroup
	for range streams {
		st, err := la.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			st.SetWriteDeadline(time.Now().Add(30 * time.Second))
			st.Write(payload)
			st.CloseWrite()
		})
	}
	wg.Wait()
	for range streams {
		select {
		case sum := <-sums:
			if sum != want {
				t.Fatal("a stream's bytes arrived corrupted")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("transfer stalled")
		}
	}
	after := kcp.DefaultSnmp.Copy()
	resent := after.FastRetransSegs - before.FastRetransSegs + after.EarlyRetransSegs - before.EarlyRetransSegs
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d KCP datagrams, %d behind one sent before them; %d segments fast-retransmitted", sent, inversions, resent)
	if inversions != 0 || resent != 0 {
		t.Fatalf("%d of %d KCP datagrams left behind a later one and %d segments were resent on a wire that loses nothing", inversions, sent, resent)
	}
}
