package bench

import (
	"encoding/binary"
	"io"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/testenv"
)

// sink reads everything a client sends, then answers with the byte count
// and closes: the far end of every throughput measurement.
func sink(tb testing.TB) string {
	return testenv.ServeTCP(tb, func(c *net.TCPConn) {
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		binary.Write(c, binary.BigEndian, n)
	})
}

// goRelay is the plain userspace proxy baseline: accept, dial, io.Copy.
func goRelay(tb testing.TB, target string) string {
	return testenv.ServeTCP(tb, func(c *net.TCPConn) { proxyTo(c, target) })
}

// proxyTo relays c to a new connection to target both ways (the copy
// that finishes first half-closes), then closes both.
func proxyTo(c *net.TCPConn, target string) {
	u, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
	io.Copy(c, u)
	c.Close()
	u.Close()
}

var chunk = make([]byte, 64<<10)

// push sends n bytes over c, half-closes and waits for the sink's count.
func push(tb testing.TB, c net.Conn, n int64) {
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	for sent := int64(0); sent < n; {
		k := min(int64(len(chunk)), n-sent)
		if _, err := c.Write(chunk[:k]); err != nil {
			tb.Fatalf("write after %d bytes: %v", sent, err)
		}
		sent += k
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	var got int64
	if err := binary.Read(c, binary.BigEndian, &got); err != nil || got != n {
		tb.Fatalf("sink counted %d bytes, want %d (err %v)", got, n, err)
	}
}

// transfer dials addr and pushes n bytes; it returns the elapsed time.
func transfer(tb testing.TB, addr string, n int64) time.Duration {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	push(tb, c, n)
	return time.Since(start)
}

func mbits(bytes int64, d time.Duration) float64 { return float64(bytes) * 8 / d.Seconds() / 1e6 }

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
