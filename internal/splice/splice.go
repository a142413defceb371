// Package splice copies bytes both ways between two connections with TCP
// half-close semantics: when one side finishes sending, the other side's
// write half is closed (FIN), and the copy the other way keeps going until
// that side finishes too. HTTP/1.0 clients, `nc -N` and many protocols rely
// on this; closing both directions at the first EOF truncates replies.
//
// A copy that fails instead (a reset, a failed read or write, a stalled
// reader) aborts both directions at once, and a TCP side is reset (RST),
// not closed: a FIN would tell the client that a truncated download was
// complete. Tunnels carries such aborts across a link; Guard bounds what
// streams whose reader stopped reading may hold.
//
// An idle connection costs a router only its sockets and stream: each
// direction gives up its goroutine while there is nothing to copy
// (park.go), woken by one epoll set for the process (a TCP source) or by
// its link's Arrivals (a tunneled stream).
package splice

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// closeWriter is implemented by *net.TCPConn, *net.UnixConn and smux streams.
type closeWriter interface{ CloseWrite() error }

// Conn is what Join needs from each side.
type Conn interface {
	io.Reader
	io.Writer
	io.Closer
}

// Aborter is a side that is not simply closed when a Join aborts: Join
// calls Abort (which must wake its blocked reads and writes) and leaves
// closing it to the caller. Tunnels uses it to tell the peer before the
// smux stream's FIN goes out.
type Aborter interface{ Abort() }

// Result is how a Join ended.
type Result struct {
	AToB, BToA int64
	// Err is the failure that aborted the copy; nil when both directions
	// reached EOF.
	Err error
}

// Aborted reports whether the copy failed rather than finished.
func (r Result) Aborted() bool { return r.Err != nil }

// Buffers. A copy waiting for data must hold no buffer: a router holding
// hundreds of idle connections would pay for each one. A tunneled stream
// hands over the frames smux already holds (WriteTo), so its direction
// needs no buffer of its own; a TCP side waits for readability before it
// takes a buffer from the pool (see copyTCP), and gives it back after each
// write. Other connections (tests, pipes) read into a private buffer.
const largeBuf = 32 << 10 // matches io.Copy and smux frame sizes

var bufPool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// Join copies a->b and b->a until both directions finish, then closes both.
// If either direction fails, Join aborts: it resets every *net.TCPConn side
// (RST), calls Abort on an Aborter side and closes any other, so the other
// direction stops at once, whatever it was blocked on. Writes to a
// *net.TCPConn go through g when g is not nil.
func Join(a, b Conn, g *Guard) Result {
	var wg sync.WaitGroup
	var res Result
	Start(a, b, g, &wg, func(r Result) { res = r })
	wg.Wait()
	return res
}

// Start is Join without waiting: the two directions are copied in fresh
// goroutines, wg counts each direction until it has ended, and done gets
// the Result in whichever of them ends last. The caller's own goroutine,
// whose stack grew while it set the connection up (dialing alone takes 8
// KiB), does not idle with the connection, and an idle direction gives up
// its goroutine too where it can (park.go).
func Start(a, b Conn, g *Guard, wg *sync.WaitGroup, done func(Result)) {
	newJoin(a, b, g, wg, done).start()
}

// join is one Join's shared state.
type join struct {
	a, b   Conn
	wg     *sync.WaitGroup
	done   func(Result)
	res    Result
	halves [2]half // [0] copies b to a, [1] a to b

	ended atomic.Int32 // directions finished

	mu     sync.Mutex // guards err and closed
	err    error      // the first failure
	closed bool       // closed without failure (a side cannot half-close)
}

func newJoin(a, b Conn, g *Guard, wg *sync.WaitGroup, done func(Result)) *join {
	j := &join{a: a, b: b, wg: wg, done: done}
	j.halves[0] = half{j: j, dst: a, src: b, n: &j.res.BToA}
	j.halves[1] = half{j: j, dst: b, src: a, n: &j.res.AToB}
	for i := range j.halves {
		h := &j.halves[i]
		h.w = h.dst
		if tc, ok := h.dst.(*net.TCPConn); ok && g != nil {
			h.w = &guarded{g, tc}
		}
	}
	return j
}

func (j *join) start() {
	j.wg.Add(2)
	for i := range j.halves {
		go j.halves[i].run()
	}
}

// run copies its direction until it ends or parks (park.go); the last
// direction to end closes both sides of a clean join and reports.
func (h *half) run() {
	err, parked := h.copy()
	if parked {
		return
	}
	h.forget()
	j := h.j
	j.pump(h.dst, h.src, err)
	if j.ended.Add(1) == 2 {
		j.res.Err = j.err // both directions are done: no lock needed
		if j.err == nil {
			j.a.Close()
			j.b.Close()
		}
		j.done(j.res)
	}
	j.wg.Done()
}

// pump ends a direction whose copy from src to dst returned err: on
// success it half-closes dst; if dst cannot half-close, both ends are
// closed so the other direction stops too; if the copy failed, the join
// aborts.
func (j *join) pump(dst, src Conn, err error) {
	if err != nil {
		j.abort(err)
		return
	}
	cw, ok := dst.(closeWriter)
	if !ok {
		j.mu.Lock()
		j.closed = true
		j.mu.Unlock()
		dst.Close()
		src.Close()
		j.resumeParked()
		return
	}
	if err := cw.CloseWrite(); err != nil {
		j.abort(err)
	}
}

// failure returns the error that aborted the join, if it did.
func (j *join) failure() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// abort records err (unless the join already failed or was closed on
// purpose, which makes every later error a consequence) and stops both
// sides.
func (j *join) abort(err error) {
	j.mu.Lock()
	if j.err != nil || j.closed {
		j.mu.Unlock()
		return
	}
	j.err = err
	j.mu.Unlock()
	stop(j.a)
	stop(j.b)
	j.resumeParked()
}

// stop ends one side of an aborted join.
func stop(c Conn) {
	switch c := c.(type) {
	case *net.TCPConn:
		Reset(c)
	case Aborter:
		c.Abort()
	default:
		c.Close()
	}
}

// Reset closes c with an RST instead of a FIN: linger 0 discards unsent
// data and makes the kernel reset the connection (SO_LINGER, socket(7)).
func Reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// guarded writes to a local TCP connection through the link's Guard.
type guarded struct {
	g *Guard
	c *net.TCPConn
}

func (w *guarded) Write(b []byte) (int, error) { return w.g.Write(w.c, b) }

// wake makes blocked reads and writes on c return at once (a deadline in
// the past), without closing it.
func wake(c interface{ SetDeadline(time.Time) error }) { c.SetDeadline(time.Now()) }
