package bench

import (
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/xtaci/kcp-go/v5"
)

// rawKCPThroughput moves bulk bytes over plain kcp-go (no encryption, no
// smux) between two loopback sockets tuned exactly like the tunnel, and
// returns Mbit/s. KCP has no half-close, so the receiver reads a known
// length and acknowledges it.
func rawKCPThroughput(b *testing.B) float64 {
	t := link.DefaultTuning()
	ln, err := kcp.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ln.SetReadBuffer(8 << 20)
	ln.SetWriteBuffer(8 << 20)
	done := make(chan error, 1)
	go func() {
		s, err := ln.AcceptKCP()
		if err != nil {
			done <- err
			return
		}
		defer s.Close()
		t.Apply(s)
		n, err := io.CopyN(io.Discard, s, bulk)
		if err == nil {
			err = binary.Write(s, binary.BigEndian, n)
		}
		done <- err
		time.Sleep(100 * time.Millisecond) // let the ack leave before Close
	}()
	c, err := kcp.DialWithOptions(ln.Addr().String(), nil, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(8 << 20)
	c.SetWriteBuffer(8 << 20)
	t.Apply(c)
	start := time.Now()
	for sent := 0; sent < bulk; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	var n int64
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	if err := binary.Read(c, binary.BigEndian, &n); err != nil || n != bulk {
		b.Fatalf("raw kcp: receiver got %d bytes, want %d (err %v)", n, bulk, err)
	}
	elapsed := time.Since(start)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return mbits(bulk, elapsed)
}
