// Package splice copies bytes both ways between two connections with TCP
// half-close semantics: when one side finishes sending, the other side's
// write half is closed (FIN), and the copy the other way keeps going until
// that side finishes too. HTTP/1.0 clients, `nc -N` and many protocols rely
// on this; closing both directions at the first EOF truncates replies.
package splice

import (
	"io"
	"sync"
)

// closeWriter is implemented by *net.TCPConn, *net.UnixConn and smux streams.
type closeWriter interface{ CloseWrite() error }

// Conn is what Join needs from each side.
type Conn interface {
	io.Reader
	io.Writer
	io.Closer
}

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
// It returns the bytes copied each way.
func Join(a, b Conn) (aToB, bToA int64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bToA = pump(a, b)
	}()
	aToB = pump(b, a)
	wg.Wait()
	a.Close()
	b.Close()
	return aToB, bToA
}

// pump copies src to dst, then half-closes dst. If dst cannot half-close,
// or the copy failed, both ends are closed so the other pump stops too.
func pump(dst, src Conn) int64 {
	n, err := copyAdaptive(dst, src)
	cw, ok := dst.(closeWriter)
	if err != nil || !ok || cw.CloseWrite() != nil {
		dst.Close()
		src.Close()
	}
	return n
}

// copyAdaptive copies src to dst until EOF, switching between a small
// private buffer and a large pooled one as described above.
func copyAdaptive(dst io.Writer, src io.Reader) (int64, error) {
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
			if _, werr := dst.Write(buf[:n]); werr != nil {
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
