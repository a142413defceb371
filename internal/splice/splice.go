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

// bufPool holds copy buffers; 32 KiB matches io.Copy and smux frame sizes.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

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
	bp := bufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	bufPool.Put(bp)
	cw, ok := dst.(closeWriter)
	if err != nil || !ok || cw.CloseWrite() != nil {
		dst.Close()
		src.Close()
	}
	return n
}
