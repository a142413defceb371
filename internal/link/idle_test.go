package link

import (
	"io"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// idleLinks opens n linked pairs of UDP links over in-memory wires, each
// with one smux stream that has carried a message (an agent's control
// stream between heartbeats), and leaves them idle.
func idleLinks(t *testing.T, n int, open func(*PacketConn, uint32, Tuning, bool) (*Link, error)) []*Link {
	t.Helper()
	links := make([]*Link, 0, 2*n)
	for i := range n {
		pa, pb := linkedConns(t, nil)
		la, err := open(pa, uint32(i), DefaultTuning(), false)
		if err != nil {
			t.Fatal(err)
		}
		lb, err := open(pb, uint32(i), DefaultTuning(), true)
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, la, lb)
		sa, err := la.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		sa.Write([]byte("hello"))
		sb, err := lb.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(sb, make([]byte, 5)); err != nil {
			t.Fatal(err)
		}
	}
	return links
}

type idleCost struct {
	heap, goroutines float64       // per link end
	cpu              time.Duration // process CPU over the idle window
}

func measureIdle(t *testing.T, n int, open func(*PacketConn, uint32, Tuning, bool) (*Link, error), window time.Duration, check func([]*Link)) idleCost {
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	links := idleLinks(t, n, open)
	time.Sleep(500 * time.Millisecond) // ACKs and the last retransmission timers settle
	runtime.GC()
	runtime.ReadMemStats(&m1)
	g1 := runtime.NumGoroutine()
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	if check != nil {
		check(links)
	} else {
		time.Sleep(window)
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano()) * time.Nanosecond
	c := idleCost{heap: float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(2*n),
		goroutines: float64(g1-g0) / float64(2*n), cpu: cpu}
	for _, l := range links {
		l.Close()
	}
	runtime.KeepAlive(links)
	return c
}

// TestIdleLinkCost compares n idle links on kcp-go's UDPSession with n on
// the ARQ driver: heap and goroutines per link end, process CPU while
// they idle for two seconds, and no driver timer firing in that time.
func TestIdleLinkCost(t *testing.T) {
	const n = 200 // 500 gives the same figures per link; 200 keeps the -race run short
	window := 2 * time.Second
	old := measureIdle(t, n, func(pc *PacketConn, conv uint32, tn Tuning, server bool) (*Link, error) {
		tn.DataShards, tn.ParityShards = 1, 0 // UDPSession; no parity shards: FEC encodes nothing
		return NewUDPLink(pc, conv, tn, server)
	}, window, nil)
	time.Sleep(200 * time.Millisecond)
	cur := measureIdle(t, n, NewUDPLink, window, func(links []*Link) {
		before := uint64(0)
		for _, l := range links {
			before += l.arq.ticks.Load()
		}
		time.Sleep(window)
		after := uint64(0)
		for _, l := range links {
			after += l.arq.ticks.Load()
		}
		if after != before {
			t.Errorf("%d idle links fired their timers %d times in %v", 2*n, after-before, window)
		}
	})
	t.Logf("per idle link end (%d pairs): UDPSession %.0f heap bytes, %.1f goroutines; ARQ driver %.0f heap bytes, %.1f goroutines",
		n, old.heap, old.goroutines, cur.heap, cur.goroutines)
	t.Logf("process CPU over %v idle: UDPSession %v, ARQ driver %v", window, old.cpu, cur.cpu)
	if cur.heap > old.heap/2 {
		t.Errorf("ARQ driver holds %.0f bytes per idle link, more than half of UDPSession's %.0f", cur.heap, old.heap)
	}
	if cur.goroutines > old.goroutines-2 {
		t.Errorf("ARQ driver runs %.1f goroutines per idle link, UDPSession %.1f: want its reader and sender gone", cur.goroutines, old.goroutines)
	}
}
