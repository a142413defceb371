package relay

import (
	"container/list"
	"encoding/binary"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/smux"
)

// flow is one client address of a UDP exposure and its stream to the agent.
// While idle it holds no datagram buffer: queued datagrams sit in buffers
// of their own size class, and the reply path borrows a buffer only while
// a frame is being read. Its fixed cost is the struct, one goroutine (the
// reply reader) and the smux stream; the goroutine that writes queued
// datagrams to the stream runs only while there are some (a resident
// writer per flow cost 6 KiB of stack each, 6 MiB per full exposure).
type flow struct {
	client netip.AddrPort
	done   chan struct{} // closed by stop
	once   sync.Once

	mu       sync.Mutex // guards q, qBytes, stopped, draining and st
	q        []*[]byte  // framed datagrams waiting for the stream, oldest first
	qBytes   int        // size-class bytes held by q
	stopped  bool
	draining bool         // a drain goroutine is running
	st       *smux.Stream // set once the stream header is written

	// Guarded by the flowTable's mu.
	last           int64         // unix nanos of the last datagram either way
	lruElem        *list.Element // in flowTable.lru
	unansweredElem *list.Element // in flowTable.unanswered until the first answer
}

func newFlow(client netip.AddrPort) *flow {
	return &flow{client: client, done: make(chan struct{})}
}

// enqueue copies a framed datagram into f's queue; false means it was
// dropped (queue or exposure budget full, or f already stopped).
func (t *flowTable) enqueue(f *flow, framed []byte) bool {
	c := int64(classSize(len(framed)))
	if t.queued.Load()+c > exposureQueueBytes {
		return false
	}
	f.mu.Lock()
	if f.stopped || len(f.q) >= flowQueue || f.qBytes+int(c) > flowQueueBytes {
		f.mu.Unlock()
		return false
	}
	b := getBuf(len(framed))
	copy(*b, framed)
	f.q = append(f.q, b)
	f.qBytes += int(c)
	t.queued.Add(c)
	t.startDrainLocked(f)
	f.mu.Unlock()
	return true
}

// startDrainLocked starts the goroutine that writes f's queue to its
// stream, unless one runs or the stream is not ready; f.mu is held.
func (t *flowTable) startDrainLocked(f *flow) {
	if f.draining || f.st == nil || f.stopped || len(f.q) == 0 {
		return
	}
	f.draining = true
	st := f.st
	t.e.s.r.sessions.Go(func() { t.drain(f, st) })
}

// drain writes queued datagrams to the stream until the queue is empty or
// the write fails (the stream is gone, or stop woke it).
func (t *flowTable) drain(f *flow, st *smux.Stream) {
	for {
		b := f.pop()
		if b == nil {
			return
		}
		_, err := st.Write(*b)
		t.release(b)
		if err != nil {
			t.stop(f)
			return
		}
	}
}

// pop takes the oldest queued datagram, or nil after marking the drain
// goroutine gone (under the same lock, so enqueue starts a new one).
func (f *flow) pop() *[]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.q) == 0 || f.stopped {
		f.draining = false
		return nil
	}
	b := f.q[0]
	f.q[0] = nil
	f.q = f.q[1:]
	if len(f.q) == 0 {
		f.q = nil // an idle flow keeps no queue array
	}
	f.qBytes -= cap(*b)
	return b
}

// release returns a dequeued buffer to its pool and the exposure budget.
func (t *flowTable) release(b *[]byte) {
	t.queued.Add(-int64(cap(*b)))
	putBuf(b)
}

// stop ends f without blocking (callers may hold the table's mu): it
// frees the queued datagrams and wakes the stream's reader and any write
// waiting for the agent's window; serve then closes the stream, which
// tells the agent to free its local socket.
func (t *flowTable) stop(f *flow) {
	f.once.Do(func() {
		close(f.done)
		f.mu.Lock()
		f.stopped = true
		q := f.q
		f.q, f.qBytes = nil, 0
		if f.st != nil {
			f.st.SetDeadline(time.Now())
		}
		f.mu.Unlock()
		for _, b := range q {
			t.release(b)
		}
	})
}

// serve opens the flow's stream, sends its header and then carries the
// agent's replies until the flow is stopped (idle, evicted, exposure
// closed) or the agent closes the stream.
func (t *flowTable) serve(f *flow) {
	defer func() {
		t.mu.Lock()
		t.removeLocked(f)
		t.mu.Unlock()
		t.stop(f)
	}()
	select {
	case t.opening <- struct{}{}:
	case <-f.done:
		return // evicted before its turn: the link never saw it
	}
	st, err := t.open(f)
	<-t.opening
	if err != nil {
		return
	}
	defer st.Close()
	// A Reset from the agent for this stream ends the flow (registered so
	// both ends' Tunnels know every tunneled stream).
	defer t.e.s.tunnels.Track(st.ID(), func() { t.stop(f); st.Close() })()
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.st = st
	t.startDrainLocked(f) // datagrams that came while the stream opened
	f.mu.Unlock()
	t.replies(f, st)
}

// open opens f's stream and sends its header.
func (t *flowTable) open(f *flow) (*smux.Stream, error) {
	st, err := t.e.s.link.OpenStream()
	if err != nil {
		return nil, err
	}
	hdr := protocol.AppendStreamHeader(nil, protocol.StreamHeader{Proto: protocol.ProtoUDP, Exposure: t.e.name,
		Client: f.client, Server: addrPortOf(t.e.udp.LocalAddr())})
	if _, err := st.Write(hdr); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// replies sends the agent's datagrams for f to its client until the
// stream ends. It reads each frame's 2-byte length first and borrows a
// buffer of that size only while the frame is handled, so a flow waiting
// for a reply holds no buffer (this mirrors protocol.ReadUDPFrame, which
// needs a maximum-size buffer for every call).
func (t *flowTable) replies(f *flow, st *smux.Stream) {
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(st, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n > protocol.MaxUDPPayload {
			return
		}
		c := int64(classSize(n))
		if t.replying.Add(c) > exposureReplyBytes {
			t.replying.Add(-c)
			t.e.s.r.stats.DatagramsDropped.Add(1)
			if _, err := io.CopyN(io.Discard, st, int64(n)); err != nil {
				return
			}
			continue
		}
		b := getBuf(n)
		_, err := io.ReadFull(st, *b)
		if err == nil {
			t.answered(f)
			t.e.udp.WriteToUDPAddrPort(*b, f.client)
		}
		putBuf(b)
		t.replying.Add(-c)
		if err != nil {
			return
		}
	}
}
