package splice

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitGoroutines waits up to 2 s for the process's goroutines to come
// down to at most want and returns the last count.
func waitGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(2 * time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// idleTunnels splices conns connections over p, each carrying a byte each
// way, and waits for their copies to park: all four per connection (two
// at each end) must give up their goroutines.
func idleTunnels(t *testing.T, p *linkPair, conns int) (clients, services []*net.TCPConn, done chan Result) {
	t.Helper()
	theReadySet() // its goroutine, started on first use, is not the connections'
	base := runtime.NumGoroutine()
	done = make(chan Result, 2*conns)
	b := []byte{1}
	for range conns {
		client, service, d := p.splice(t)
		go func() {
			for r := range d {
				done <- r
			}
		}()
		client.Write(b)
		io.ReadFull(service, b)
		service.Write(b)
		io.ReadFull(client, b)
		clients, services = append(clients, client), append(services, service)
	}
	// What may stay per connection: the goroutine forwarding its results.
	if n := waitGoroutines(base + conns); n > base+conns {
		t.Fatalf("%d goroutines for %d idle connections (%d before them, one each to forward results): the copies did not park",
			n-base, conns, base)
	}
	return clients, services, done
}

// TestIdleCopiesParkAndWake: idle tunneled connections hold no goroutine
// at either end, and each direction wakes for data: 64 KiB each way on
// every connection at once arrive intact, and a clean close still ends
// both ends cleanly.
func TestIdleCopiesParkAndWake(t *testing.T) {
	const conns = 40
	p := newLinkPair(t)
	clients, services, done := idleTunnels(t, p, conns)
	idle := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := range conns {
		for _, dir := range [][2]*net.TCPConn{{clients[i], services[i]}, {services[i], clients[i]}} {
			wg.Go(func() {
				data := make([]byte, 64<<10)
				rand.Read(data)
				go dir[0].Write(data)
				got := make([]byte, len(data))
				dir[1].SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.ReadFull(dir[1], got); err != nil {
					t.Errorf("connection %d: %v", i, err)
					return
				}
				if sha256.Sum256(got) != sha256.Sum256(data) {
					t.Errorf("connection %d: bytes differ after a wake", i)
				}
			})
		}
	}
	wg.Wait()
	// Idle again, then a clean close from the client: the service reads
	// EOF, closes, and both ends report a clean end.
	if n := waitGoroutines(idle); n > idle {
		t.Fatalf("%d goroutines after the transfers, %d before: copies did not park again", n, idle)
	}
	for i := range conns {
		clients[i].CloseWrite()
		services[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := io.Copy(io.Discard, services[i]); err != nil || n != 0 {
			t.Fatalf("connection %d: service after the client's FIN: %d bytes, %v", i, n, err)
		}
		services[i].Close()
	}
	for range 2 * conns {
		select {
		case r := <-done:
			if r.Aborted() {
				t.Fatalf("clean close ended as %+v", r)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ends not released after a clean close")
		}
	}
}

// TestParkedCopiesAbort: connections whose copies are all parked are
// still torn down at once by a client's reset (through the peer's Reset
// to the service) and by the link going down.
func TestParkedCopiesAbort(t *testing.T) {
	p := newLinkPair(t)
	clients, services, done := idleTunnels(t, p, 4)
	Reset(clients[0])
	services[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := services[0].Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("service of a reset client: %v, want ECONNRESET", err)
	}
	waitBoth(t, done, time.Second)
	p.relay.Close()
	p.agent.Close()
	p.relayT.LinkDown()
	p.agentT.LinkDown()
	for range 3 {
		waitBoth(t, done, time.Second)
	}
	for i := 1; i < 4; i++ {
		clients[i].SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := clients[i].Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client %d after the link went down: %v, want ECONNRESET", i, err)
		}
	}
}
