package netsim

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestSocket pins the net.PacketConn contract the agent and relay rely on.
func TestSocket(t *testing.T) {
	inet := New(Options{QueueLen: 8})
	defer inet.Close()
	h1, h2 := mustHost(t, inet, respIP), mustHost(t, inet, respIP2)
	a, b := listen(t, h1, 0), listen(t, h2, 7700)

	if p := addrOf(a).Port(); p < ephemeralMin || addrOf(a).Addr() != respIP {
		t.Errorf("ephemeral socket on %v, want %v and a port from %d", addrOf(a), respIP, ephemeralMin)
	}
	if _, err := h2.ListenPacket("udp4", ":7700"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second bind of 7700: got %v, want EADDRINUSE", err)
	}
	if _, err := h2.ListenPacket("udp4", "10.9.9.9:0"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("bind to a foreign address: got %v, want EADDRNOTAVAIL", err)
	}
	if _, err := h2.ListenPacket("tcp", ":0"); err == nil {
		t.Error("tcp listen succeeded, want an error")
	}

	send(t, a, addrOf(b), "hello")
	small := make([]byte, 3)
	n, from, err := b.ReadFrom(small)
	if err != nil || string(small[:n]) != "hel" || from.(*net.UDPAddr).AddrPort() != addrOf(a) {
		t.Errorf("ReadFrom = %d %q %v %v; want 3 \"hel\" (truncated) from %v", n, small[:n], from, err, addrOf(a))
	}

	// Deadlines: a timeout is a net.Error with Timeout() and wraps
	// os.ErrDeadlineExceeded; clearing it makes reads block again.
	b.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	_, _, err = b.ReadFrom(small)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past deadline: got %v, want a timeout", err)
	}
	b.SetReadDeadline(time.Time{})
	send(t, a, addrOf(b), "again")
	if _, msg, ok := recv(t, b, time.Second); !ok || msg != "again" {
		t.Errorf("after clearing the deadline: got %q, %v", msg, ok)
	}
	a.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := a.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(addrOf(b))); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write past deadline: got %v, want a timeout", err)
	}
	a.SetWriteDeadline(time.Time{})

	// A full receive queue drops, like a full socket buffer.
	for range 20 {
		send(t, a, addrOf(b), "flood")
	}
	got := 0
	for {
		if _, _, ok := recv(t, b, noArrival); !ok {
			break
		}
		got++
	}
	if got != 8 || b.(*conn).dropped.Load() != 12 {
		t.Errorf("20 datagrams into a queue of 8: read %d, dropped %d; want 8, 12", got, b.(*conn).dropped.Load())
	}

	// Close wakes a blocked reader with net.ErrClosed and frees the port.
	done := make(chan error)
	go func() { _, _, err := b.ReadFrom(small); done <- err }()
	time.Sleep(5 * time.Millisecond)
	b.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("blocked read after Close: got %v, want net.ErrClosed", err)
	}
	if _, err := b.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(addrOf(a))); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: got %v, want net.ErrClosed", err)
	}
	if err := b.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: got %v, want net.ErrClosed", err)
	}
	if _, err := h2.ListenPacket("udp", "203.0.113.11:7700"); err != nil {
		t.Errorf("port 7700 not free after Close: %v", err)
	}
	send(t, a, netip.MustParseAddrPort("198.51.100.1:9"), "nowhere") // no route: silently dropped
}

// TestNoLeak: a simulation with delayed packets in flight, armed deadlines
// and a blocked reader leaves no goroutine behind after Close
// (wireguard-go's goroutineLeakCheck idea).
func TestNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	inet := New(Options{})
	srv := mustHost(t, inet, respIP)
	nat, err := inet.AddNAT(natIP, NATConfig{Delay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	lan := mustHost(t, nat.Inside(), lanIPs[0])
	pc, err := lan.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := srv.ListenPacket("udp4", ":3478")
	if err != nil {
		t.Fatal(err)
	}
	r.SetReadDeadline(time.Now().Add(time.Hour))
	pc.WriteTo([]byte("delayed an hour"), net.UDPAddrFromAddrPort(addrOf(r)))
	blocked := make(chan error)
	go func() { _, _, err := r.ReadFrom(make([]byte, 10)); blocked <- err }()
	inet.Close()
	if err := <-blocked; !errors.Is(err, net.ErrClosed) {
		t.Errorf("reader after Network.Close: got %v, want net.ErrClosed", err)
	}
	if _, err := lan.ListenPacket("udp4", ":0"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listen after Close: got %v, want net.ErrClosed", err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; {
		n := runtime.NumGoroutine()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
