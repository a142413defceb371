package splice

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// Parking. An idle tunneled connection should cost its router a few KiB
// of heap, not two goroutines: each waiting copy keeps a stack of 4-8 KiB
// (grown on its first burst, and the runtime does not shrink it below 4),
// more than the connection's sockets and smux stream cost together. So a
// direction with nothing to copy for idleAfter parks: its goroutine
// returns, and a fresh one resumes the copy when data (or a FIN, a reset,
// an abort) arrives. The wait before parking keeps request and answer
// traffic on the fast path (parking and resuming on every message added
// 20-30 µs to a tunneled round trip); after it, a burst costs one
// goroutine start and one epoll_ctl. What wakes a parked copy depends on
// its source:
//
//   - a TCP connection: the process's readiness set (readyset_linux.go),
//     one goroutine waiting for every parked socket; elsewhere, or if the
//     set cannot be made, the copy does not park;
//   - a tunneled smux stream: its link's Arrivals (arrivals.go), which
//     sees every frame smux reads; Tunnels sets it up.
//
// The state machine between a parking copy and its wakers: the copy
// stores parked, then checks once more for what may have come in the
// meantime, and a waker resumes only a copy it moves from parked back to
// running (compare-and-swap), so exactly one goroutine copies at a time
// and no wake-up is lost. An abort, or a close from outside the join,
// resumes parked directions too: their sources fail at once.

// idleAfter is how long a copy waits for data before it parks: long
// against a round trip on a LAN or loopback, short against the time a
// user opening many connections takes, so that few copies wait at once
// and their stacks do not pile up.
const idleAfter = 20 * time.Millisecond

const (
	running int32 = iota
	parked
)

// half is one direction of a join.
type half struct {
	j        *join
	dst, src Conn
	w        io.Writer // dst, through the Guard for a TCP connection
	n        *int64    // bytes copied, in j.res

	state atomic.Int32
	token atomic.Uint64 // the readiness set's name for a TCP source

	// A tunneled source's counts (Arrivals): what smux received for it
	// from its first byte, and what the copy (or the caller, before
	// Splice) took from it. consumed is only touched by the one goroutine
	// copying.
	received *atomic.Int64
	consumed int64
	final    atomic.Bool   // its FIN arrived, or its link failed
	more     chan struct{} // Arrivals' word to a copy waiting to park
}

// resume starts a fresh goroutine for a parked direction.
func (h *half) resume() {
	if h.state.CompareAndSwap(parked, running) {
		go h.run()
	}
}

// arrived is a tunneled source's wake-up from Arrivals.
func (h *half) arrived(final bool) {
	if final {
		h.final.Store(true)
	}
	h.resume()
	h.nudge()
}

// nudge tells a tunneled source's copy that waits before parking to look
// again (a resumed copy looks anyway).
func (h *half) nudge() {
	if h.more != nil {
		select {
		case h.more <- struct{}{}:
		default:
		}
	}
}

// resumeParked resumes the parked directions of a join whose sides were
// just closed or reset: a socket closed while parked is dropped from the
// readiness set without an event, and a parked stream hears nothing.
func (j *join) resumeParked() {
	for i := range j.halves {
		j.halves[i].resume()
		j.halves[i].nudge()
	}
}

// forget drops a finished direction's watch in the readiness set.
func (h *half) forget() {
	if t := h.token.Load(); t != 0 {
		theReadySet().forget(t)
	}
}

// copy copies src to dst until EOF or failure, or until it parks, holding
// no buffer while src is idle when src is a TCP connection or a tunneled
// stream (see Buffers in splice.go).
func (h *half) copy() (err error, parked bool) {
	switch src := h.src.(type) {
	case *tunneled:
		if h.received != nil {
			return h.copyStream(src)
		}
		n, err := io.Copy(h.w, src.Stream) // smux hands over the frames it holds (WriteTo)
		*h.n += n
		return err, false
	case *net.TCPConn: // also an io.WriterTo, but one that holds a buffer
		return h.copyTCP(src)
	}
	n, err := io.Copy(h.w, h.src)
	*h.n += n
	return err, false
}

// park stores parked and reports whether the copy may return: false if
// check finds something arrived meanwhile and no waker took the copy over.
func (h *half) park(check func() bool) bool {
	h.state.Store(parked)
	if !check() {
		return true
	}
	return !h.state.CompareAndSwap(parked, running)
}

// copyStream copies a tunneled stream whose link has Arrivals. smux's
// WriteTo hands over the frames the stream holds and then waits for more
// inside smux, so the copy's writer makes it return instead once the
// copy has handed on every byte Arrivals counted (errDrained; smux still
// sends the window update it owes). The copy then waits up to idleAfter
// for more and parks, unless more arrived or the stream ended meanwhile:
// both wake it through Arrivals, which counts before it wakes.
func (h *half) copyStream(t *tunneled) (error, bool) {
	wt := t.Stream.(io.WriterTo)
	w := drainWriter{h}
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	waited := false // for idleAfter since the copy found the stream drained
	for {
		if err := h.j.failure(); err != nil {
			return err, false
		}
		if h.drained() && !t.closed() {
			if !waited {
				if idle == nil {
					idle = time.NewTimer(idleAfter)
				} else {
					idle.Reset(idleAfter)
				}
				select {
				case <-h.more:
				case <-idle.C:
					waited = true
				}
				continue
			}
			// Once parked, consumed belongs to whichever goroutine a
			// waker starts: the check compares a copy.
			consumed := h.consumed
			if h.park(func() bool { return h.received.Load() != consumed || h.final.Load() }) {
				return nil, true
			}
			continue
		}
		waited = false
		n, err := wt.WriteTo(w)
		*h.n += n
		if err != errDrained {
			return err, false
		}
	}
}

// drained reports whether the stream holds nothing the copy has not
// handed on, and has not ended.
func (h *half) drained() bool {
	return h.consumed == h.received.Load() && !h.final.Load()
}

// errDrained ends a WriteTo whose stream has nothing more to read now.
var errDrained = errors.New("stream drained")

// drainWriter is the writer of a tunneled stream's copy.
type drainWriter struct{ h *half }

func (d drainWriter) Write(b []byte) (int, error) {
	n, err := d.h.w.Write(b)
	d.h.consumed += int64(n)
	if err == nil && d.h.drained() {
		return n, errDrained
	}
	return n, err
}

// copyTCP reads a TCP source only once it is readable, into a pooled
// buffer given back after each write; it waits in Go's poller without a
// buffer, and once the socket has had nothing to read for idleAfter (a
// read deadline, moved on by every read) it parks in the readiness set,
// where there is one.
func (h *half) copyTCP(tc *net.TCPConn) (error, bool) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return err, false
	}
	set := theReadySet()
	var (
		b    *[]byte
		n    int
		rerr error
	)
	read := func(fd uintptr) bool {
		b = bufPool.Get().(*[]byte)
		for {
			if n, rerr = syscall.Read(int(fd), *b); rerr != syscall.EINTR {
				break
			}
		}
		if rerr != syscall.EAGAIN {
			return true
		}
		bufPool.Put(b)
		b = nil      // not even a reference to it
		return false // wait for data without a buffer
	}
	for {
		if set != nil {
			tc.SetReadDeadline(time.Now().Add(idleAfter))
		}
		if err := rc.Read(read); err != nil {
			if set == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
				return err, false
			}
			// Parked before armed: the set reports data already waiting
			// at once, and its wake must find the copy parked.
			h.state.Store(parked)
			if set.arm(rc, &h.token, h.resume) == nil {
				return nil, true
			}
			if !h.state.CompareAndSwap(parked, running) {
				return nil, true // an abort resumed it meanwhile
			}
			set = nil // wait in Go's poller from now on
			tc.SetReadDeadline(time.Time{})
			continue
		}
		switch {
		case rerr != nil: // a syscall.Errno such as ECONNRESET
			n = 0
		case n == 0:
			rerr = io.EOF
		}
		if n > 0 {
			if _, rerr = h.w.Write((*b)[:n]); rerr != nil {
				// A smux write that gave up (deadline, close) may still
				// be queued for the link: leave the buffer to the GC.
				return rerr, false
			}
			*h.n += int64(n)
		}
		bufPool.Put(b)
		b = nil
		if rerr == io.EOF {
			return nil, false
		}
		if rerr != nil {
			return rerr, false
		}
	}
}
