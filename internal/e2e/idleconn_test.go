package e2e

import (
	"crypto/sha256"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
)

// TestIdleConnectionsParkThroughTheTunnel: tunneled connections that went
// idle hold no goroutine at the relay or the agent, over UDP and TCP links
// alike (the links' Arrivals wake the stream side, the readiness set the
// socket side), and every one of them wakes for data: 64 KiB through each
// at once come back from the echo intact.
func TestIdleConnectionsParkThroughTheTunnel(t *testing.T) {
	for _, tr := range []agent.Transport{agent.TransportUDP, agent.TransportTCP} {
		t.Run(string(tr), func(t *testing.T) {
			const conns = 30
			p := startPair(t, tr)
			var held []net.Conn
			dial := func() {
				c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(p.tcpPort)), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				c.SetDeadline(time.Now().Add(30 * time.Second))
				c.Write([]byte{1})
				if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
			}
			// The first connection wakes a parked UDP link (smux and its
			// goroutines exist while streams do): count from there.
			dial()
			time.Sleep(300 * time.Millisecond)
			base := runtime.NumGoroutine()
			for range conns - 1 {
				dial()
			}
			// The echo service keeps one goroutine per connection; the
			// relay and the agent would keep two each without parking.
			want := base + conns - 1
			n := runtime.NumGoroutine()
			for deadline := time.Now().Add(3 * time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
				time.Sleep(20 * time.Millisecond)
			}
			if n > want {
				t.Fatalf("%d goroutines more for %d idle connections, want at most %d (the echo's): copies did not park", n-base, conns-1, conns-1)
			}
			var wg sync.WaitGroup
			for i, c := range held {
				wg.Go(func() {
					data := randomBytes(t, 64<<10)
					go c.Write(data)
					got := make([]byte, len(data))
					if _, err := io.ReadFull(c, got); err != nil {
						t.Errorf("connection %d after idling: %v", i, err)
						return
					}
					if sha256.Sum256(got) != sha256.Sum256(data) {
						t.Errorf("connection %d: echo differs after idling", i)
					}
				})
			}
			wg.Wait()
		})
	}
}
