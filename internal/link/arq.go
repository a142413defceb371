package link

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/kcp-go/v5"
)

// arqConn drives kcp-go's ARQ core (kcp.KCP) for one link, in place of
// kcp-go's UDPSession, so that an idle link costs nothing:
//
//   - no goroutine of its own: the PacketConn's drain goroutine (which
//     exists only while datagrams wait, see rxqueue.go) feeds Input, and
//     KCP's output is sealed and handed to the socket's writer queue
//     after mu is released (sending runs the owner's path functions,
//     which take the owner's locks: a peer session's relay path takes the
//     lock under which it asks for SRTT), by one goroutine at a time in
//     the order KCP flushed it (unlockAndSend);
//   - a timer armed only while segments wait for an ACK or for window
//     (WaitSnd > 0), for the earliest retransmission timeout among them
//     (kcpResendIn; the next flush interval while something else may be
//     due sooner); a link with nothing in flight has none running
//     (UDPSession ticks every 10 ms forever, and would wake a link whose
//     segments wait out a 200 ms timeout twenty times for nothing);
//   - the buffer for a segment larger than the caller's Read buffer is
//     pooled and returned once read; UDPSession holds a 2,048-slot send
//     channel, a 2,048-slot batch queue and a receive buffer per link.
//
// It keeps UDPSession's behaviour where smux can see it: stream mode,
// Write flushes at once (SetWriteDelay(false)) and blocks while the send
// window is full, ACKs leave when the datagrams of a receive batch have
// been input (ACKNoDelay), Read blocks until data arrives, and both return
// io.ErrClosedPipe after Close.
type arqConn struct {
	pc     *PacketConn
	conv   uint32
	sndWnd int // send window in segments: Write blocks while WaitSnd reaches it
	rcvWnd int // receive window in segments
	mss    int
	period time.Duration // KCP's flush interval

	sizedRTT     int32         // the smoothed RTT (ms) the windows were last sized to (pathwindow.go)
	streamWindow atomic.Uint32 // the stream window smux's updates advertise; 0: smux's own

	mu  sync.Mutex // guards kcp, out, sending, closed, armed, timer and pending
	kcp *kcp.KCP
	out *[]*[]byte // KCP's packets to send once mu is released (pooled)
	// sending is set while a goroutine sends what was flushed; flushes
	// meanwhile leave their packets in out for it (unlockAndSend).
	sending bool
	timer   *time.Timer // created on first use, stopped while idle
	armed   bool
	due     time.Time // when the armed timer fires
	// pending is what is left of a segment the last Read could not take
	// whole (buf is its pooled buffer).
	pending []byte
	buf     *[]byte
	closed  bool
	// batching is set while the drain goroutine inputs a receive batch
	// and more of it follows; a Write meanwhile leaves its flush to the
	// batch's end (owed), which flushes ACKs anyway.
	batching, owed bool

	readEv, writeEv chan struct{} // capacity 1: "try again"
	die             chan struct{} // closed by Close

	ticks atomic.Uint64 // timer flushes, for tests: an idle link has none

	// Deadlines (unix nanos, 0: none) for the control channel, which runs
	// on an arqConn of its own in the parked layout (park.go).
	rdl, wdl atomic.Int64
	// active is when the conn last carried a segment either way (unix
	// nanos): the parked layout's idle test.
	active atomic.Int64

	// The control conversation's KCP state is dropped while idle and
	// rebuilt from its sequence numbers (freeze.go); kcp is nil then.
	t       Tuning
	freezes bool
	frozen  [kcpFrozenWords]uint32
	rcvTop  uint32 // one past the highest data segment input (freeze.go)
	freezeN atomic.Uint64
}

// newARQConn starts KCP conversation conv on pc, the only one pc carries.
func newARQConn(pc *PacketConn, conv uint32, t Tuning) *arqConn {
	c := newARQ(pc, conv, t)
	pc.setSink(c.input)
	resend := c.resendNow
	pc.resendInFlight.Store(&resend)
	return c
}

// newARQ starts KCP conversation conv on pc; the caller routes pc's KCP
// datagrams to input (park.go's router, when pc carries several).
func newARQ(pc *PacketConn, conv uint32, t Tuning) *arqConn {
	c := &arqConn{pc: pc, conv: conv, sndWnd: t.SendWindow, rcvWnd: t.RecvWindow, period: time.Duration(max(t.Interval, 10)) * time.Millisecond,
		readEv: make(chan struct{}, 1), writeEv: make(chan struct{}, 1), die: make(chan struct{}), t: t}
	c.kcp = c.newKCP()
	c.mss = t.kcpMTU() - kcp.IKCP_OVERHEAD
	if c.sndWnd <= 0 {
		c.sndWnd = kcp.IKCP_WND_SND
	}
	if c.rcvWnd <= 0 {
		c.rcvWnd = kcp.IKCP_WND_RCV
	}
	c.t.SendWindow, c.t.RecvWindow = c.sndWnd, c.rcvWnd
	c.active.Store(nowNano())
	return c
}

// newKCP builds the conversation's KCP state as the tuning says.
func (c *arqConn) newKCP() *kcp.KCP {
	k := kcp.NewKCP(c.conv, func(b []byte, n int) {
		if n >= kcp.IKCP_OVERHEAD {
			c.queueOutLocked(b[:n])
		}
	})
	kcpSetStream(k)
	k.NoDelay(c.t.NoDelay, c.t.Interval, c.t.Resend, c.t.NoCongestion)
	k.WndSize(c.t.SendWindow, c.t.RecvWindow)
	k.SetMtu(c.t.kcpMTU())
	return k
}

// Read returns stream bytes as they arrive, blocking until some do.
func (c *arqConn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, io.ErrClosedPipe
		}
		if len(c.pending) > 0 {
			n := copy(b, c.pending)
			c.pending = c.pending[n:]
			if len(c.pending) == 0 {
				c.releaseLocked()
				c.freezeLocked()
			}
			c.mu.Unlock()
			return n, nil
		}
		if size := c.peekLocked(); size > 0 {
			var n int
			if len(b) >= size {
				n = c.kcp.Recv(b)
			} else {
				c.buf = getBuf(size)
				c.kcp.Recv((*c.buf)[:size])
				n = copy(b, (*c.buf)[:size])
				c.pending = (*c.buf)[n:size]
			}
			if kcpProbing(c.kcp) { // the read reopened a full window: say so now
				c.flushLocked()
			}
			if c.pending == nil {
				c.freezeLocked()
			}
			c.unlockAndSend()
			return n, nil
		}
		c.mu.Unlock()
		if err := c.wait(c.readEv, &c.rdl); err != nil {
			return 0, err
		}
	}
}

// wait blocks until ev fires, the conn closes or the deadline in dl
// passes (os.ErrDeadlineExceeded, as net.Conn reports it).
func (c *arqConn) wait(ev chan struct{}, dl *atomic.Int64) error {
	d := dl.Load()
	if d == 0 {
		select {
		case <-ev:
		case <-c.die:
		}
		return nil
	}
	left := time.Duration(d - nowNano())
	if left <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-ev:
	case <-c.die:
	case <-t.C:
	}
	return nil
}

// SetReadDeadline bounds Read (and waitData); the zero time removes it.
func (c *arqConn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(deadline(t))
	notify(c.readEv) // a blocked Read looks at the new deadline
	return nil
}

// SetWriteDeadline bounds a Write waiting for window.
func (c *arqConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(deadline(t))
	notify(c.writeEv)
	return nil
}

func deadline(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// waitData returns once bytes wait to be read, or with Read's error.
func (c *arqConn) waitData() error {
	for {
		c.mu.Lock()
		closed, ready := c.closed, len(c.pending) > 0 || c.peekLocked() > 0
		c.mu.Unlock()
		switch {
		case closed:
			return io.ErrClosedPipe
		case ready:
			return nil
		}
		if err := c.wait(c.readEv, &c.rdl); err != nil {
			return err
		}
	}
}

// idle reports whether nothing is in flight either way (no segment
// waiting for an ACK, none unread) and, if so, since when the conn has
// carried nothing.
func (c *arqConn) idle() (bool, time.Time) {
	c.mu.Lock()
	busy := c.kcp != nil && (c.kcp.WaitSnd() > 0 || c.kcp.PeekSize() > 0) || len(c.pending) > 0
	c.mu.Unlock()
	return !busy, unixNano(c.active.Load())
}

// getBuf returns a pooled buffer of at least n bytes (stream-mode segments
// are at most one MSS, so the pool's datagram buffers always fit; a larger
// message from a peer in message mode gets its own).
func getBuf(n int) *[]byte {
	if n > protocol.MaxDatagram {
		b := make([]byte, n)
		return &b
	}
	return bufPool.Get().(*[]byte)
}

func (c *arqConn) releaseLocked() {
	if c.buf != nil {
		*c.buf = (*c.buf)[:cap(*c.buf)]
		bufPool.Put(c.buf)
		c.buf, c.pending = nil, nil
	}
}

// Write queues b and flushes at once; it blocks while the send window is full.
func (c *arqConn) Write(b []byte) (int, error) { return c.WriteBuffers([][]byte{b}) }

// WriteBuffers writes several slices in one flush (smux uses it to send a
// frame header and its payload together).
func (c *arqConn) WriteBuffers(v [][]byte) (int, error) {
	var upd [smuxUPDLen]byte
	v = c.rewriteWindow(v, &upd)
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, io.ErrClosedPipe
		}
		c.thawLocked()
		if c.kcp.WaitSnd() < c.sndWnd {
			n := 0
			for _, b := range v {
				n += len(b)
				for len(b) > 0 { // at most one MSS per Send, as UDPSession does
					k := min(len(b), c.mss)
					c.kcp.Send(b[:k])
					b = b[k:]
				}
			}
			if c.batching {
				// The batch's end flushes (input) within microseconds,
				// with its ACKs in the same datagrams: one flush and
				// one scan of the send window instead of two, and one
				// datagram fewer each way for a window update. The
				// timer stays armed in case the batch never ends.
				c.owed = true
				c.afterLocked()
			} else {
				c.flushLocked()
			}
			c.unlockAndSend()
			c.active.Store(nowNano())
			return n, nil
		}
		c.mu.Unlock()
		if err := c.wait(c.writeEv, &c.wdl); err != nil {
			return 0, err
		}
	}
}

// input takes one authenticated KCP datagram from the PacketConn's drain
// goroutine. last is false while more datagrams of the same batch follow:
// their ACKs wait for the batch's last one and leave together. p nil means
// the batch ended without a KCP datagram: flush the ACKs it owes.
func (c *arqConn) input(p []byte, last bool) {
	c.mu.Lock()
	switch {
	case c.closed:
	case p == nil: // a batch ended after its datagrams went in as "more follow"
		c.active.Store(nowNano())
		c.flushLocked()
	default:
		if last { // once per receive batch: a clock read per datagram was 1 % of the agent's CPU
			c.active.Store(nowNano())
		}
		c.thawLocked()
		c.noteSegments(p)
		c.kcp.Input(p, kcp.IKCP_PACKET_REGULAR, last && !c.owed)
		if kcpProbing(c.kcp) { // the peer asked for our window
			c.flushLocked()
		}
		if c.kcp.PeekSize() > 0 {
			notify(c.readEv)
		}
		c.afterLocked()
	}
	c.batching = !last && !c.closed
	if last && c.owed {
		c.flushLocked()
	}
	if last {
		c.freezeLocked()
	}
	c.unlockAndSend()
}

// flushLocked sends what KCP has (ACKs, probes, new and due segments).
func (c *arqConn) flushLocked() {
	c.owed = false
	if c.kcp == nil {
		return
	}
	kcpFlush(c.kcp)
	// The send buffer is scanned for its earliest timeout to arm a timer
	// that is not armed (after a tick, or from idle) and while few
	// segments are in flight (a transfer's tail, where an early
	// retransmit may be due on the next interval). A bulk transfer
	// flushes on every Write with a full window in flight, and a scan per
	// flush doubled kcp-go's own; there an armed timer is brought forward
	// only if what this flush sent could be due before it: everything
	// (re)sent now is due no sooner than one retransmission timeout.
	resendIn := time.Duration(-1)
	switch {
	case c.pc.fec.active.Load():
		resendIn = 0 // an open parity group closes on the interval (fec.go)
	case !c.armed || c.kcp.WaitSnd() <= scanInFlight:
		resendIn = kcpResendIn(c.kcp)
	default:
		resendIn = kcpRTO(c.kcp) // afterWaitLocked keeps the armed timer unless this is sooner
	}
	c.afterWaitLocked(resendIn)
}

// scanInFlight is the most segments in flight for which every flush looks
// for the earliest retransmission timeout.
const scanInFlight = 64

// afterLocked wakes a blocked writer when the window has room and keeps
// the timer armed exactly while segments wait (for an ACK, for window).
func (c *arqConn) afterLocked() { c.afterWaitLocked(-1) }

// afterWaitLocked is afterLocked after a flush that found the earliest
// retransmission resendIn away (0: flush again after the interval; -1: no
// flush ran, keep an armed timer as it is). A flush that finds something
// due sooner than the armed timer brings it forward.
func (c *arqConn) afterWaitLocked(resendIn time.Duration) {
	c.resizeLocked()
	if c.kcp.WaitSnd() < c.sndWnd {
		notify(c.writeEv)
	}
	if c.kcp.WaitSnd() == 0 || c.armed && resendIn < 0 {
		return
	}
	wait := max(c.period, resendIn)
	due := time.Now().Add(wait)
	if c.armed && !due.Before(c.due) {
		return
	}
	c.armed, c.due = true, due
	if c.timer == nil {
		c.timer = time.AfterFunc(wait, c.tick)
	} else {
		c.timer.Reset(wait)
	}
}

// resendNow retransmits at once everything in flight (kcpResendAll): the
// peer moved to a new address, or was heard again after a silence
// (PacketConn.authenticated).
func (c *arqConn) resendNow() {
	c.mu.Lock()
	if !c.closed && c.kcp != nil && kcpResendAll(c.kcp) {
		c.flushLocked()
	}
	c.unlockAndSend()
}

// tick is the timer: retransmit what is due, probe a closed window, and
// re-arm while anything is still in flight.
func (c *arqConn) tick() {
	c.mu.Lock()
	c.armed = false
	if !c.closed && c.kcp != nil {
		c.ticks.Add(1)
		c.flushLocked()
		c.freezeLocked()
	}
	c.unlockAndSend()
	c.pc.fecFlush() // parity for a group the burst left open (fec.go)
}

var outPool = sync.Pool{New: func() any { s := make([]*[]byte, 0, 16); return &s }}

// queueOutLocked keeps a copy of one packet KCP flushed, behind room for
// the Data header it is sealed under where it lies (sendKCPBatch).
func (c *arqConn) queueOutLocked(p []byte) {
	if c.out == nil {
		c.out = outPool.Get().(*[]*[]byte)
	}
	bp := bufPool.Get().(*[]byte)
	*bp = (*bp)[:protocol.DataHeaderLen+copy((*bp)[protocol.DataHeaderLen:], p)]
	*c.out = append(*c.out, bp)
}

// unlockAndSend releases mu, then seals and sends what KCP flushed under
// it, in order. One goroutine sends at a time: a flush while another
// goroutine sends leaves its packets in out, and the sender takes them
// after its own, in the order KCP numbered them. When each goroutine sent
// its own flush, a Write's and an input batch's flushes (both send new
// segments once the window is full, as it is with many streams) raced to
// the socket after the lock, and the receiver saw segments out of order:
// with 8 streams the relay fast-retransmitted 3.7 % of its segments for
// holes that were never there (0.08 % with one stream), and the
// receiver's loss meter took the reordering for loss and turned parity on.
func (c *arqConn) unlockAndSend() {
	if c.out == nil || c.sending {
		c.mu.Unlock()
		return
	}
	c.sending = true
	for c.out != nil {
		out := c.out
		c.out = nil
		c.mu.Unlock()
		c.pc.sendKCPBatch(*out)
		for i, bp := range *out {
			*bp = (*bp)[:cap(*bp)]
			bufPool.Put(bp)
			(*out)[i] = nil
		}
		*out = (*out)[:0]
		outPool.Put(out)
		c.mu.Lock()
	}
	c.sending = false
	c.mu.Unlock()
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// srtt returns KCP's smoothed RTT.
func (c *arqConn) srtt() time.Duration {
	c.mu.Lock()
	ms := int32(c.frozen[kcpFrozenSRTT])
	if c.kcp != nil {
		ms = kcpSRTT(c.kcp)
	}
	c.mu.Unlock()
	return time.Duration(ms) * time.Millisecond
}

// Close sends what KCP still holds once (as UDPSession does), then stops
// the timer; Read and Write return io.ErrClosedPipe from then on.
func (c *arqConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return io.ErrClosedPipe
	}
	if c.kcp != nil {
		kcpFlush(c.kcp)
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.armed = false
	c.releaseLocked()
	c.unlockAndSend()
	close(c.die)
	return nil
}
