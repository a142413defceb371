package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/testenv"
)

// BenchmarkProcessUDPStreamsPaired is BenchmarkTunnelUDPStreamsPaired
// with the relay and the agent as processes of the real binary, the way
// the issue measured 8 streams against one.
func BenchmarkProcessUDPStreamsPaired(b *testing.B) {
	bin := buildBinary(b)
	_, _, public := startTunnelProcesses(b, bin, []string{bin}, "udp", sink(b), testenv.EchoTCP(b))
	pairedStreams(b, public[0])
}

// cpuBulk is what one iteration of BenchmarkProcessCPU moves: enough for
// the 10 ms ticks of /proc/PID/stat to be a small error.
const cpuBulk = 256 << 20

// BenchmarkProcessCPU runs the real binary as two processes and reports
// what a router pays per byte: CPU-seconds (user + system, both processes
// together, from /proc/PID/stat) per GiB moved through the tunnel, beside
// the throughput of the same transfer. The same-run baseline is a plain Go
// TCP relay (accept, dial, io.Copy) in a process of its own, moving the
// same bytes between the same client and sink: x-gorelay is the tunnel's
// CPU per byte over that one process's. The machine's load average before
// each sub-benchmark is reported as load1.
func BenchmarkProcessCPU(b *testing.B) {
	bin := buildBinary(b)
	target := sink(b)
	base := goRelayProcess(b, target)
	baseline := 0.0
	b.Run("gorelay", func(b *testing.B) {
		baseline = cpuPerGiB(b, base, []int{base.pid}, 1, cpuBulk)
	})
	for _, tc := range []struct {
		transport string
		streams   int
	}{{"udp", 1}, {"udp", 8}, {"tcp", 1}} {
		b.Run(fmt.Sprintf("%s-%d", tc.transport, tc.streams), func(b *testing.B) {
			relay, agent, public := startTunnelProcesses(b, bin, []string{bin}, tc.transport, target, testenv.EchoTCP(b))
			cpu := cpuPerGiB(b, proxyProc{addr: public[0]}, []int{relay, agent}, tc.streams, cpuBulk)
			if baseline > 0 {
				b.ReportMetric(cpu/baseline, "x-gorelay")
			}
		})
	}
	// The router's build: the agent for mipsle under qemu-mipsel-static
	// (its syscalls run on this kernel, so GSO and GRO apply), the relay
	// native, 16 MiB per iteration. The figure is qemu's CPU, emulation
	// included: compare it between versions, not with the native rows.
	b.Run("udp-1-mipsle-qemu", func(b *testing.B) {
		qemu, err := exec.LookPath("qemu-mipsel-static")
		if err != nil {
			b.Skip("SKIP: qemu-mipsel-static not installed (apt-get install qemu-user-static)")
		}
		mipsle := buildBinary(b, "GOARCH=mipsle", "GOMIPS=softfloat")
		relay, agent, public := startTunnelProcesses(b, bin, []string{qemu, mipsle}, "udp", target, testenv.EchoTCP(b))
		cpuPerGiB(b, proxyProc{addr: public[0]}, []int{relay, agent}, 1, 16<<20)
	})
}

// cpuPerGiB moves bulk bytes through p per iteration in streams parallel
// connections, reports Mbit/s, CPU-s/GiB of pids together and
// load1, and returns the CPU figure.
func cpuPerGiB(b *testing.B, p proxyProc, pids []int, streams int, bulk int64) float64 {
	load := load1(b) // before the load this benchmark makes
	var ticks int64
	var moved int64
	var elapsed float64
	for b.Loop() {
		t0, start := sumTicks(b, pids), time.Now()
		var wg sync.WaitGroup
		for range streams {
			wg.Go(func() { transfer(b, p.addr, bulk/int64(streams)) })
		}
		wg.Wait()
		elapsed += time.Since(start).Seconds()
		ticks += sumTicks(b, pids) - t0
		moved += bulk
	}
	cpu := float64(ticks) / clockTicks / (float64(moved) / (1 << 30))
	b.ReportMetric(float64(moved)*8/elapsed/1e6, "Mbit/s")
	b.ReportMetric(cpu, "CPU-s/GiB")
	b.ReportMetric(load, "load1")
	return cpu
}

func sumTicks(b *testing.B, pids []int) (t int64) {
	for _, pid := range pids {
		t += cpuTicks(b, pid)
	}
	return t
}

func load1(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	return v
}

// proxyProc is a TCP address that forwards to the sink, and the pid of
// the process behind it when that is one process (the baseline).
type proxyProc struct {
	addr string
	pid  int
}

// goRelayEnv makes the test binary a plain TCP relay to the named target
// instead of running tests (see TestMain): the baseline's own process.
const goRelayEnv = "PINHOLE_BENCH_GORELAY"

func TestMain(m *testing.M) {
	if target := os.Getenv(goRelayEnv); target != "" {
		serveGoRelay(target)
		return
	}
	if os.Getenv(probeEnv) != "" {
		serveProbe()
		return
	}
	if os.Getenv(echoEnv) != "" {
		serveEcho()
		return
	}
	os.Exit(m.Run())
}

// serveGoRelay prints its listening address and relays until stdin closes.
func serveGoRelay(target string) {
	serveTCP(func(c *net.TCPConn) { proxyTo(c, target) })
}

// serveTCP prints the address of a new loopback listener and hands each
// connection to handle on a goroutine of its own, until stdin closes.
func serveTCP(handle func(*net.TCPConn)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c.(*net.TCPConn))
		}
	}()
	io.Copy(io.Discard, os.Stdin)
}

// goRelayProcess starts the baseline relay process in front of target.
func goRelayProcess(b *testing.B, target string) proxyProc {
	return helperProcess(b, goRelayEnv+"="+target)
}

// echoEnv makes the test binary a TCP echo server instead of running tests
// (see TestMain): the relay-scale benchmark's local service, outside the
// process that runs its 10,000 agents, whose goroutines it queued behind.
const echoEnv = "PINHOLE_BENCH_ECHO"

// serveEcho prints its listening address and echoes until stdin closes.
func serveEcho() {
	serveTCP(func(c *net.TCPConn) { io.Copy(c, c); c.Close() })
}

// helperProcess starts the test binary with env (one of the modes
// TestMain serves) and returns the address it printed; it stops when the
// benchmark ends.
func helperProcess(b *testing.B, env string) proxyProc {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if _, _, perr := net.SplitHostPort(strings.TrimSpace(line)); err != nil || perr != nil {
		b.Fatalf("helper process %s: %q %v", env, line, err)
	}
	return proxyProc{addr: strings.TrimSpace(line), pid: cmd.Process.Pid}
}
