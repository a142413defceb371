package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/relay"
)

// floodSources is the number of client ports the flood sends from: each
// a socket of its own on loopback, like spoofed sources on the internet.
const floodSources = 5000

// TestUDPFloodBoundedMemory floods a UDP exposure with 100-byte datagrams
// from 5,000 source ports while new legitimate clients keep asking. The
// relay runs in this process, so its heap is what runtime.ReadMemStats
// sees; the agent runs as the real binary in its own process so that its
// memory does not count. Before bounded flows this grew the relay by about
// 256 MiB (two 64 KiB buffers for each of 1024 flows), never returned it,
// and new clients got nothing until the flood's flows idled out.
func TestUDPFloodBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("floods 5,000 sockets")
	}
	bin := buildPinhole(t)
	port := testenv.FreePort(t)
	svc := serveQuestions(t)

	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	ak := testenv.Key(t)
	rcfg.Agents = []relay.AgentEntry{{Name: "r1", PublicKey: ak.Public(), Allow: []relay.PortRange{{Low: port, High: port}}}}
	r, rlog, _ := testenv.StartRelay(t, rcfg)

	// The agent's max_flows is above the relay's 1024 so that the relay's
	// own policy decides who is served.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, "name: r1\nprivate_key: %s\nrelays:\n  - address: %s\n    public_key: %s\nadmin: off\nport_mapping: off\nmemory_limit: off\nheartbeat: 1s\nexpose:\n  - {name: dns, protocol: udp, local: %q, remote_port: %d, max_flows: 65536}\n",
		ak, r.Addr(), rcfg.PrivateKey.Public(), svc, port), 0o600)
	var alog testenv.LogBuffer
	agentCmd := exec.Command(bin, "agent", "-c", cfg)
	agentCmd.Stdout, agentCmd.Stderr = &alog, &alog
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentCmd.Process.Kill(); agentCmd.Wait() })
	testenv.WaitFor(t, 15*time.Second, "dns exposure open", func() bool { return testenv.Exposed(r, "dns") })
	pub := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}
	if !ask(pub, "before") {
		t.Fatal("a client got no answer before the flood")
	}

	base, baseLive := relayMem(), relayLive()
	sources := make([]*net.UDPConn, 0, floodSources)
	t.Cleanup(func() {
		for _, c := range sources {
			c.Close()
		}
	})
	for range floodSources {
		c, err := net.DialUDP("udp", nil, pub)
		if err != nil {
			t.Fatalf("flood socket %d: %v", len(sources), err)
		}
		sources = append(sources, c)
	}

	var flooding atomic.Bool
	flooding.Store(true)
	fullRound := make(chan struct{}) // closed when every source has sent once
	var peak atomic.Uint64
	var during uint64 // after GC, as the last flood datagram is sent
	var wg sync.WaitGroup
	wg.Go(func() {
		// Two rounds from every source: the first at up to 2,000
		// datagrams a second fills the flow table and overflows it, the
		// second at 500 a second keeps it full (every datagram is a new
		// flow: 5,000 sources cycle through 1,024 slots) while new clients
		// ask. Every flow the relay opens costs the agent a stream and a
		// local socket (and, today, 128 KiB of buffers); 500 new flows a
		// second is what the agent process serves even on a loaded test
		// machine, so the answers measure the relay's policy, not the
		// agent's CPU. Faster floods cost the relay no more memory (see
		// maxOpening): the flows it cannot open are evicted unopened.
		defer func() {
			during = relayMem()
			flooding.Store(false)
		}()
		junk := make([]byte, 100)
		pauses := []time.Duration{25 * time.Millisecond, 100 * time.Millisecond}
		if raceDetector {
			pauses = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond} // 500, then 250 a second
		}
		for round, pause := range pauses {
			if round == 1 {
				close(fullRound)
			}
			for i, c := range sources {
				c.Write(junk)
				if i%50 == 49 {
					time.Sleep(pause)
					if m := relayMemNoGC(); m > peak.Load() {
						peak.Store(m)
					}
				}
			}
		}
	})
	// New clients ask once the flood has filled the flow table, for as
	// long as it lasts.
	<-fullRound
	var asked, answered int
	var slowest time.Duration
	for i := 0; flooding.Load() || i < 3; i++ {
		asked++
		t0 := time.Now()
		if ask(pub, "during-"+strconv.Itoa(i)) {
			answered++
		}
		slowest = max(slowest, time.Since(t0))
	}
	wg.Wait()
	counters := r.Counters()
	flows := 0
	for _, a := range r.Status().Agents {
		for _, e := range a.Exposures {
			flows += e.Flows
		}
	}
	t.Logf("new clients answered during the flood: %d of %d (slowest %v); flows %d, evicted %d, dropped %d",
		answered, asked, slowest.Round(time.Millisecond), flows, counters["udp_flows_evicted"], counters["udp_datagrams_dropped"])
	t.Logf("relay heap+stacks: baseline %s, peak during flood (no GC) %s, end of flood (after GC) %s",
		mib(base), mib(peak.Load()), mib(during))

	if answered*10 < asked*9 {
		t.Errorf("only %d of %d new clients were answered during the flood", answered, asked)
	}
	if counters["udp_flows_evicted"] == 0 {
		t.Error("udp_flows_evicted is 0 after a flood from 5,000 sources")
	}
	if flows > 1024 {
		t.Errorf("%d flows open, want at most 1024", flows)
	}
	if during > base+32<<20 {
		t.Errorf("relay heap grew from %s to %s during the flood, want under 32 MiB more", mib(base), mib(during))
	}

	for _, c := range sources {
		c.Close()
	}
	sources = nil
	testenv.WaitFor(t, 30*time.Second, "flood flows to idle out", func() bool {
		for _, a := range r.Status().Agents {
			for _, e := range a.Exposures {
				if e.Flows > 0 {
					return false
				}
			}
		}
		return true
	})
	// What the flood's flows held is gone: the live heap is back near the
	// baseline. Heap in use keeps some fragmentation, which the runtime
	// returns to the system over the next minutes.
	after, afterLive := relayMem(), relayLive()
	t.Logf("relay after the flood idled out: heap+stacks %s, live heap %s (baseline %s)", mib(after), mib(afterLive), mib(baseLive))
	if afterLive > baseLive+4<<20 {
		t.Errorf("relay live heap %s after the flood idled out, want within 4 MiB of the %s baseline", mib(afterLive), mib(baseLive))
	}
	if !ask(pub, "after") {
		t.Error("a client got no answer after the flood")
	}
	if t.Failed() {
		t.Logf("relay log:\n%s\nagent log:\n%s", rlog, &alog)
	}
}

// serveQuestions is a UDP service on loopback that answers only datagrams
// starting with "q" (like a DNS server ignoring junk), so flood flows stay
// unanswered.
func serveQuestions(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n > 0 && buf[0] == 'q' {
				buf[0] = 'a'
				pc.WriteTo(buf[:n], addr)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// ask is one new client: a socket of its own asks up to five times, one
// second apart, as a DNS resolver would.
func ask(pub *net.UDPAddr, id string) bool {
	c, err := net.DialUDP("udp", nil, pub)
	if err != nil {
		return false
	}
	defer c.Close()
	want := []byte("a" + id)
	buf := make([]byte, 64)
	for range 5 {
		c.Write([]byte("q" + id))
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil && bytes.Equal(buf[:n], want) {
			return true
		}
	}
	return false
}

// relayMem is heap in use plus goroutine stacks after two collections (the
// second frees what sync.Pools kept from the first).
func relayMem() uint64 {
	runtime.GC()
	runtime.GC()
	return relayMemNoGC()
}

// relayLive is the live heap: what the last of two collections kept.
func relayLive() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func relayMemNoGC() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
