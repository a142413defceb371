package link

import (
	"net"
	"runtime"
	"testing"
	"time"
)

func TestWindowForRTT(t *testing.T) {
	base := DefaultTuning() // floor 1 MiB
	for _, c := range []struct {
		name string
		t    Tuning
		rtt  time.Duration
		want int
	}{
		{"unknown rtt keeps the floor", base, 0, 1 << 20},
		{"loopback keeps the floor", base, 50 * time.Microsecond, 1 << 20},
		{"40 ms at 1 Gbit/s", base, 40 * time.Millisecond, 5_000_000},
		{"a second is capped", base, time.Second, DefaultMaxStreamWindow},
		{"own rate", Tuning{StreamBuffer: 64 << 10, WindowRate: 100e6}, 100 * time.Millisecond, 1_250_000},
		{"own ceiling", Tuning{StreamBuffer: 64 << 10, MaxStreamWindow: 2 << 20}, 100 * time.Millisecond, 2 << 20},
	} {
		if got := c.t.windowForRTT(c.rtt); got != c.want {
			t.Errorf("%s: window %d, want %d", c.name, got, c.want)
		}
	}
}

func TestCapWindow(t *testing.T) {
	tu := DefaultTuning()
	tu.CapWindow(24 << 20) // the agent's default memory limit
	if tu.MaxStreamWindow != 3<<20 {
		t.Fatalf("24 MiB limit: ceiling %d, want 3 MiB", tu.MaxStreamWindow)
	}
	if w := tu.windowForRTT(time.Second); w != 3<<20 {
		t.Fatalf("capped window %d, want 3 MiB", w)
	}
	tu.CapWindow(4 << 20) // never below the floor
	if tu.MaxStreamWindow != 1<<20 {
		t.Fatalf("4 MiB limit: ceiling %d, want the 1 MiB floor", tu.MaxStreamWindow)
	}
	none := DefaultTuning()
	none.CapWindow(0)
	if none.MaxStreamWindow != 0 {
		t.Fatalf("no limit changed the ceiling to %d", none.MaxStreamWindow)
	}
}

// TestTCPRTTMeasured: the kernel's RTT of a live TCP connection is read
// (the link sizes its window from it); other conns give 0.
func TestTCPRTTMeasured(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SKIP: TCP_INFO is read on Linux only; elsewhere the window stays at its floor")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			buf := make([]byte, 1)
			c.Read(buf)
			c.Write(buf)
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{1})
	c.Read(make([]byte, 1))
	rtt := tcpRTT(c)
	if rtt <= 0 || rtt > time.Second {
		t.Fatalf("loopback RTT %v, want a small positive value", rtt)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := tcpRTT(a); got != 0 {
		t.Fatalf("pipe RTT %v, want 0", got)
	}
}
