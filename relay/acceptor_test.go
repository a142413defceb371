package relay

import (
	"context"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestAcceptorServesManyListeners: 200 listeners on one acceptor; a
// connection to each reaches that listener's handler (it echoes the
// listener's index back), a removed listener's handler is never called
// again, and on Linux the listeners cost no goroutine each.
func TestAcceptorServesManyListeners(t *testing.T) {
	acc, err := newAcceptor()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { acc.run(ctx); close(done) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("acceptor did not stop")
		}
	}()

	const n = 200
	before := runtime.NumGoroutine()
	var lns []*net.TCPListener
	var removes []func()
	var wg sync.WaitGroup
	called := make([]int, n)
	var mu sync.Mutex
	for i := range n {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		remove, err := acc.add(ln, func(c net.Conn) {
			mu.Lock()
			called[i]++
			mu.Unlock()
			wg.Go(func() { c.Write([]byte{byte(i)}); c.Close() })
		})
		if err != nil {
			t.Fatal(err)
		}
		lns, removes = append(lns, ln), append(removes, remove)
	}
	if grew := runtime.NumGoroutine() - before; runtime.GOOS == "linux" && grew > 0 {
		t.Errorf("%d listeners started %d goroutines, want none", n, grew)
	}
	dial := func(i int) (byte, error) {
		c, err := net.DialTimeout("tcp", lns[i].Addr().String(), 2*time.Second)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var b [1]byte
		_, err = io.ReadFull(c, b[:])
		return b[0], err
	}
	for round := range 2 {
		for i := range n {
			got, err := dial(i)
			if err != nil || int(got) != i {
				t.Fatalf("round %d: listener %d answered %d, %v", round, i, got, err)
			}
		}
	}
	// Removed (the listener stays open): connections queue in its
	// backlog, and its handler is not called.
	removes[7]()
	c, err := net.DialTimeout("tcp", lns[7].Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := dial(8); err != nil || got != 8 {
		t.Fatalf("listener 8 after removing 7: %d, %v", got, err)
	}
	time.Sleep(100 * time.Millisecond)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if called[7] != 2 || called[8] != 3 {
		t.Fatalf("handlers called %d and %d times, want 2 and 3", called[7], called[8])
	}
}
