package bench

import (
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
)

// pingPong measures n one-byte request/response round trips on one
// connection to an echo service.
func pingPong(b *testing.B, addr string, n int) []time.Duration {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	buf := []byte{0}
	out := make([]time.Duration, 0, n)
	for i := range n + 50 {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
		if i >= 50 { // skip warm-up
			out = append(out, time.Since(start))
		}
	}
	return out
}

// setups measures n new connections: dial, one byte out, one byte back.
func setups(b *testing.B, addr string, n int) []time.Duration {
	out := make([]time.Duration, 0, n)
	buf := []byte{1}
	for range n {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(buf)
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(start))
		c.Close()
	}
	return out
}

func reportLatency(b *testing.B, prefix string, got, base []time.Duration) {
	p50, p99 := percentile(got, 50), percentile(got, 99)
	b.ReportMetric(micros(p50), prefix+"-p50-us")
	b.ReportMetric(micros(p99), prefix+"-p99-us")
	b.ReportMetric(micros(p50-percentile(base, 50)), prefix+"-added-p50-us")
	b.ReportMetric(micros(p99-percentile(base, 99)), prefix+"-added-p99-us")
}

func benchLatency(b *testing.B, transport agent.Transport) {
	measureBaselines(b)
	addr := tunnel(b, testenv.EchoTCP(b), transport)
	var rtt, setup []time.Duration
	for b.Loop() {
		rtt = append(rtt, pingPong(b, addr, 2000)...)
		setup = append(setup, setups(b, addr, 300)...)
	}
	reportLatency(b, "rtt", rtt, baselines.directLatency)
	reportLatency(b, "setup", setup, baselines.directSetup)
}

func BenchmarkLatencyUDP(b *testing.B) { benchLatency(b, agent.TransportUDP) }
func BenchmarkLatencyTCP(b *testing.B) { benchLatency(b, agent.TransportTCP) }

// BenchmarkIdleConnMemory holds 1,000 tunneled connections open and
// reports the Go heap they cost, relay and agent together (both run in
// this process; the per-process RSS figures come from the binary in
// BenchmarkProcessRSS).
func BenchmarkIdleConnMemory(b *testing.B) {
	const conns = 1000
	port := testenv.FreePort(b)
	rcfg := testenv.RelayConfig(b, "127.0.0.1:0")
	acfg := testenv.AgentConfig(b, "", rcfg.PrivateKey, agent.Exposure{Name: "svc", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(b), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	testenv.Allow(rcfg, acfg, port)
	r, _, _ := testenv.StartRelay(b, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	testenv.StartAgent(b, acfg)
	testenv.WaitFor(b, 15*time.Second, "exposure open", func() bool { return testenv.Exposed(r, "svc") })
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	base := runtime.NumGoroutine()
	for b.Loop() {
		// Start from a quiet process: the previous round's connections
		// must have finished closing on both sides.
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base+10 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		before := heapInUse()
		g0 := runtime.NumGoroutine()
		held := make([]net.Conn, 0, conns)
		for range conns {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			c.Write([]byte{1}) // make sure the stream reached the agent
			c.Read(make([]byte, 1))
			held = append(held, c)
		}
		after := heapInUse()
		b.ReportMetric(float64(after-before)/conns, "heap-B/conn")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/conns, "goroutines/conn")
		for _, c := range held {
			c.Close()
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
