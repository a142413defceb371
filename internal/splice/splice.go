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
package splice

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
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

// Buffers. An idle connection parks its two copy loops in a wait for data
// and must hold no buffer there: a router holding hundreds of idle
// connections would pay for each one. A tunneled stream hands over the
// frames smux already holds (WriteTo), so its direction needs no buffer of
// its own; a TCP side waits for readability before it takes a buffer from
// the pool (see copy), and gives it back after each write. Other
// connections (tests, pipes) read into a private buffer.
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
// goroutines started with wg.Go, and done gets the Result in whichever of
// them ends last. The caller's own goroutine, whose stack grew while it
// set the connection up (dialing alone takes 8 KiB), does not idle with
// the connection: an idle one keeps just the two small stacks of its
// parked copies.
func Start(a, b Conn, g *Guard, wg *sync.WaitGroup, done func(Result)) {
	j := &join{a: a, b: b, g: g, done: done}
	for range 2 {
		wg.Go(j.run)
	}
}

// run copies one direction (the first caller b to a, the second a to b);
// the last to finish closes both sides of a clean join and reports.
func (j *join) run() {
	if j.started.Add(1) == 1 {
		j.res.BToA = j.pump(j.a, j.b)
	} else {
		j.res.AToB = j.pump(j.b, j.a)
	}
	if j.ended.Add(1) < 2 {
		return
	}
	j.res.Err = j.err // both directions are done: no lock needed
	if j.err == nil {
		j.a.Close()
		j.b.Close()
	}
	j.done(j.res)
}

// join is one Join's shared state.
type join struct {
	a, b Conn
	g    *Guard
	done func(Result)
	res  Result

	started, ended atomic.Int32 // directions started, finished

	mu     sync.Mutex // guards err and closed
	err    error      // the first failure
	closed bool       // closed without failure (a side cannot half-close)
}

// pump copies src to dst, then half-closes dst. If dst cannot half-close,
// both ends are closed so the other pump stops too; if the copy fails, the
// join aborts.
func (j *join) pump(dst, src Conn) int64 {
	n, err := j.copy(dst, src)
	if err != nil {
		j.abort(err)
		return n
	}
	cw, ok := dst.(closeWriter)
	if !ok {
		j.mu.Lock()
		j.closed = true
		j.mu.Unlock()
		dst.Close()
		src.Close()
		return n
	}
	if err := cw.CloseWrite(); err != nil {
		j.abort(err)
	}
	return n
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

// copy copies src to dst until EOF, holding no buffer while src is idle
// when src is a TCP connection or a tunneled stream (see Buffers above).
func (j *join) copy(dst io.Writer, src io.Reader) (int64, error) {
	if tc, ok := dst.(*net.TCPConn); ok && j.g != nil {
		dst = &guarded{j.g, tc}
	}
	if t, ok := src.(*tunneled); ok {
		src = t.Stream
	}
	tc, ok := src.(*net.TCPConn) // also an io.WriterTo, but one that holds a buffer
	if !ok {
		return io.Copy(dst, src) // a smux stream hands over the frames it holds (WriteTo)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
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
	var total int64
	for {
		if err := rc.Read(read); err != nil {
			return total, err
		}
		switch {
		case rerr != nil: // a syscall.Errno such as ECONNRESET
			n = 0
		case n == 0:
			rerr = io.EOF
		}
		if n > 0 {
			if _, rerr = dst.Write((*b)[:n]); rerr != nil {
				// A smux write that gave up (deadline, close) may still
				// be queued for the link: leave the buffer to the GC.
				return total, rerr
			}
			total += int64(n)
		}
		bufPool.Put(b)
		b = nil
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
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
