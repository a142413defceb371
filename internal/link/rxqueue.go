package link

import (
	"sync"

	"github.com/pinhole/pinhole/protocol"
)

// rxQueue holds sealed datagrams between the socket's reader (Deliver)
// and the goroutine that opens them, so a session's decryption never runs
// on the reader shared by every session, and one slow session cannot make
// it wait. It costs nothing while empty: the slice comes from a pool when
// the first datagram arrives and goes back when the queue drains, and in
// sink mode (the ARQ driver, arq.go) the goroutine that drains it exists
// only while datagrams wait. In ReadFrom mode (kcp-go's UDPSession, kept
// for FEC) its reader goroutine waits on wake instead.
type rxQueue struct {
	mu      sync.Mutex // guards the fields below
	q       []inbound  // waiting datagrams, oldest first; nil while empty
	head    int        // q[:head] were taken by ReadFrom
	running bool       // a drain goroutine is live
	sink    func(p []byte, last bool)
	wake    chan struct{} // capacity 1: ReadFrom mode's "queue not empty"
}

var queuePool = sync.Pool{New: func() any { q := make([]inbound, 0, 64); return &q }}

// push queues in; it reports false (in was not queued) when the queue is
// full or the conn closed.
func (c *PacketConn) push(in inbound) bool {
	r := &c.rx
	r.mu.Lock()
	if c.isClosed() || len(r.q)-r.head >= inboxLen {
		r.mu.Unlock()
		return false
	}
	if r.q == nil {
		r.q = (*queuePool.Get().(*[]inbound))[:0]
	}
	r.q = append(r.q, in)
	start := r.sink != nil && !r.running
	if start {
		r.running = true
	}
	reader := r.sink == nil
	lone := start && len(r.q)-r.head == 1 && isKeepalive(in)
	r.mu.Unlock()
	switch {
	case lone:
		c.drain() // see isKeepalive
	case start:
		go c.drain()
	case reader:
		notify(r.wake)
	}
	return true
}

// isKeepalive reports whether in is a keepalive or its answer, by its
// header (sent in the clear, authenticated with the rest). Alone in an
// idle queue, one is opened and answered on the deliverer's goroutine:
// a goroutine started for it cost more than the work (a relay answers
// one for each of its idle agents every heartbeat, and that was most of
// its idle CPU after the socket calls).
func isKeepalive(in inbound) bool {
	h, err := protocol.ParseDataHeader((*in.buf)[:in.n])
	return err == nil && (h.Kind == protocol.DataKeepalive || h.Kind == protocol.DataKeepaliveAck)
}

// setSink switches the queue to sink mode: a drain goroutine opens the
// datagrams and hands KCP's to sink. Datagrams that came before are
// drained now.
func (c *PacketConn) setSink(sink func(p []byte, last bool)) {
	r := &c.rx
	r.mu.Lock()
	r.sink = sink
	start := len(r.q) > r.head && !r.running
	if start {
		r.running = true
	}
	r.mu.Unlock()
	if start {
		go c.drain()
	}
}

// drain opens queued datagrams batch by batch and exits when the queue is
// empty. The last KCP datagram of a batch is input with last set, so KCP
// sends the ACKs of the whole batch together; when the batch ended with
// another kind, the sink is told to flush what it owes.
func (c *PacketConn) drain() {
	r := &c.rx
	scratch := bufPool.Get().(*[]byte)
	for {
		r.mu.Lock()
		batch := r.q
		r.q, r.head = nil, 0
		if len(batch) == 0 || c.isClosed() {
			r.running = false
			r.mu.Unlock()
			c.recycle(batch)
			bufPool.Put(scratch)
			return
		}
		sink := r.sink
		r.mu.Unlock()
		owed := false
		// Packets parity recovers go in as "more follow": the batch's
		// end must then flush, even when no KCP datagram comes after.
		recovered := func(p []byte, last bool) { sink(p, last); owed = true }
		now := nowNano() // the batch arrived together
		for i, in := range batch {
			p, ok := c.open((*scratch)[:0], in, recovered, now)
			bufPool.Put(in.buf)
			batch[i] = inbound{}
			if ok {
				last := i == len(batch)-1
				sink(p, last)
				owed = !last
			}
		}
		if owed {
			sink(nil, true)
		}
		c.recycle(batch)
	}
}

// pop takes the oldest datagram for ReadFrom.
func (c *PacketConn) pop() (inbound, bool) {
	r := &c.rx
	r.mu.Lock()
	in, ok := inbound{}, r.head < len(r.q)
	if ok {
		in, r.q[r.head] = r.q[r.head], inbound{}
		r.head++
		if r.head == len(r.q) {
			r.q, r.head = r.q[:0], 0
		}
	}
	r.mu.Unlock()
	return in, ok
}

// recycle returns a drained batch's slice, and the buffers of any
// datagrams still in it, to their pools.
func (c *PacketConn) recycle(batch []inbound) {
	if batch == nil {
		return
	}
	for i, in := range batch {
		if in.buf != nil {
			bufPool.Put(in.buf)
			batch[i] = inbound{}
		}
	}
	batch = batch[:0]
	queuePool.Put(&batch)
}
