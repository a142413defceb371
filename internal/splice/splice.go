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

// Buffer sizes. An idle connection parks its two copy loops in Read; the
// buffer passed to that Read stays allocated for as long as the connection
// idles, so loops start small and borrow a large pooled buffer only while
// reads keep filling the small one (a bulk transfer), returning it as soon
// as the flow slows down. A router holding hundreds of idle connections
// then pays ~1 KiB per direction instead of 32.
const (
	smallBuf = 1 << 10
	largeBuf = 32 << 10 // matches io.Copy and smux frame sizes
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// Join copies a->b and b->a until both directions finish, then closes both.
// If either direction fails, Join aborts: it resets every *net.TCPConn side
// (RST), calls Abort on an Aborter side and closes any other, so the other
// direction stops at once, whatever it was blocked on. Writes to a
// *net.TCPConn go through g when g is not nil.
func Join(a, b Conn, g *Guard) Result {
	j := &join{a: a, b: b, g: g}
	var res Result
	var wg sync.WaitGroup
	wg.Go(func() { res.BToA = j.pump(a, b) })
	res.AToB = j.pump(b, a)
	wg.Wait()
	j.mu.Lock()
	res.Err = j.err
	j.mu.Unlock()
	if res.Err == nil {
		a.Close()
		b.Close()
	}
	return res
}

// join is one Join's shared state.
type join struct {
	a, b Conn
	g    *Guard

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

// copy copies src to dst until EOF, switching between a small private
// buffer and a large pooled one as described above.
func (j *join) copy(dst io.Writer, src io.Reader) (int64, error) {
	write := dst.Write
	if tc, ok := dst.(*net.TCPConn); ok && j.g != nil {
		write = func(b []byte) (int, error) { return j.g.Write(tc, b) }
	}
	small := make([]byte, smallBuf)
	buf := small
	var large *[]byte
	defer func() {
		if large != nil {
			bufPool.Put(large)
		}
	}()
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
		switch {
		case large == nil && n == len(small):
			large = bufPool.Get().(*[]byte)
			buf = *large
		case large != nil && n < len(*large)/4:
			bufPool.Put(large)
			large, buf = nil, small
		}
	}
}

// wake makes blocked reads and writes on c return at once (a deadline in
// the past), without closing it.
func wake(c interface{ SetDeadline(time.Time) error }) { c.SetDeadline(time.Now()) }
