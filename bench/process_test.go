package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol/secure"
)

// BenchmarkProcessRSS runs the real binary as two processes and reports the
// resident memory of each: idle, during 8 bulk streams, and per idle
// tunneled connection with 1,000 held open.
func BenchmarkProcessRSS(b *testing.B) {
	benchProcessRSS(b, nil, 32<<20, 1000)
}

// BenchmarkProcessRSSMipsleQemu is the same with the agent built for
// mipsle (softfloat) running under qemu-mipsel-static, with less traffic
// (emulation is slow) and 100 idle connections. The agent's figures are
// qemu's RSS: the emulator's own memory is included, so they are an upper
// bound for the router.
func BenchmarkProcessRSSMipsleQemu(b *testing.B) {
	qemu, err := exec.LookPath("qemu-mipsel-static")
	if err != nil {
		b.Skip("SKIP: qemu-mipsel-static not installed (apt-get install qemu-user-static)")
	}
	mipsle := buildBinary(b, "GOARCH=mipsle", "GOMIPS=softfloat")
	benchProcessRSS(b, []string{qemu, mipsle}, 2<<20, 100)
}

func benchProcessRSS(b *testing.B, agentCmd []string, bulkPer int64, conns int) {
	bin := buildBinary(b)
	if agentCmd == nil {
		agentCmd = []string{bin}
	}
	// Idle and held connections on one pair of processes, the bulk peak on
	// a fresh pair: stacks of 1,000 connections just closed stay mapped
	// for a while and would count in the peak, and after a bulk phase the
	// runtime would reuse freed heap for the connections, so neither
	// figure would be what a user sees.
	started := time.Now()
	relay, agent, ports := startTunnelProcesses(b, bin, agentCmd, "udp", testenv.EchoTCP(b))
	// Idle is measured before any load (memory the runtime keeps after a
	// bulk phase is not what an idle router pays): 2 s after start, with
	// start-up's pages still mapped, and settled, once the agent has
	// dropped them (cmd/pinhole's trimAfter, 30 s) and run its idle
	// round (keepalives, NAT checks) for a while.
	time.Sleep(2 * time.Second)
	startA, startR := rssMiB(b, agent), rssMiB(b, relay)
	time.Sleep(time.Until(started.Add(settledAfter)))
	idleA, idleR := rssMiB(b, agent), rssMiB(b, relay)
	// Idle tunneled connections, the way a user would measure them: RSS
	// of each process before and after opening them, once a few
	// connections have run the code they need (its pages are the
	// binary's, not the connections').
	warmUp(b, ports[0], 16)
	perA, perR := heldConnRSS(b, agent, relay, ports[0], conns)
	stopProcesses(agent, relay)

	relay, agent, ports = startTunnelProcesses(b, bin, agentCmd, "udp", sink(b), testenv.EchoTCP(b))
	bulk := ports[0]
	for b.Loop() {
		// Under load: 8 bulk streams, peak RSS sampled every 50 ms.
		var peakA, peakR float64
		stop := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Go(func() {
			for {
				peakA, peakR = max(peakA, rssMiB(b, agent)), max(peakR, rssMiB(b, relay))
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { transfer(b, bulk, bulkPer) })
		}
		wg.Wait()
		close(stop)
		sampler.Wait()
		b.ReportMetric(peakA, "agent-8streams-MiB")
		b.ReportMetric(peakR, "relay-8streams-MiB")

	}
	b.ReportMetric(perA, "agent-KiB/conn")
	b.ReportMetric(perR, "relay-KiB/conn")
	b.ReportMetric(idleA, "agent-idle-MiB")
	b.ReportMetric(idleR, "relay-idle-MiB")
	b.ReportMetric(startA, "agent-start-MiB")
	b.ReportMetric(startR, "relay-start-MiB")
}

// settledAfter is when an idle agent's RSS is read: 15 s after it drops
// start-up's pages (trimAfter in cmd/pinhole).
const settledAfter = 45 * time.Second

// warmUp opens n tunneled connections to echo, one at a time, each
// carrying a byte each way, and closes them.
func warmUp(b *testing.B, echo string, n int) {
	for range n {
		openEchoed(b, echo).Close()
	}
}

// openEchoed opens a tunneled connection to echo and sends a byte through
// it and back.
func openEchoed(b *testing.B, echo string) net.Conn {
	c, err := net.Dial("tcp", echo)
	if err != nil {
		b.Fatal(err)
	}
	c.Write([]byte{1})
	c.Read(make([]byte, 1))
	return c
}

// stopProcesses ends processes startProcess started before the benchmark
// does (their cleanup then finds them gone).
func stopProcesses(pids ...int) {
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}

// heldConnRSS opens conns tunneled connections to echo, each carrying one
// byte each way, holds them, and returns the RSS growth per connection of
// the agent and the relay in KiB.
func heldConnRSS(b *testing.B, agent, relay int, echo string, conns int) (agentKiB, relayKiB float64) {
	a0, r0 := rssMiB(b, agent), rssMiB(b, relay)
	held := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range conns {
		held = append(held, openEchoed(b, echo))
	}
	time.Sleep(time.Second)
	a1, r1 := rssMiB(b, agent), rssMiB(b, relay)
	return (a1 - a0) * 1024 / float64(conns), (r1 - r0) * 1024 / float64(conns)
}

// startTunnelProcesses runs the real binary as a relay and an agent
// (agentCmd, e.g. under qemu) on loopback over transport ("udp" or "tcp"),
// exposing each local TCP address on its own relay port; it returns both
// pids and the public addresses in order, once the last one, which must be
// an echo service, answers.
func startTunnelProcesses(b *testing.B, bin string, agentCmd []string, transport string, locals ...string) (relayPID, agentPID int, public []string) {
	dir := b.TempDir()
	rk, _ := secure.GeneratePrivateKey()
	ak, _ := secure.GeneratePrivateKey()
	relayPort := testenv.FreePort(b)
	var allow, expose []string
	for i, local := range locals {
		port := testenv.FreePort(b)
		allow = append(allow, strconv.Itoa(int(port)))
		expose = append(expose, fmt.Sprintf("  - name: svc%d\n    local: %s\n    remote_port: %d\n", i, local, port))
		public = append(public, "127.0.0.1:"+strconv.Itoa(int(port)))
	}
	os.WriteFile(filepath.Join(dir, "relay.yaml"), fmt.Appendf(nil, `listen: 127.0.0.1:%d
private_key: %s
bind: 127.0.0.1
admin: off
agents:
  - name: bench
    public_key: %s
    allow_ports: [%s]
`, relayPort, rk, ak.Public(), strings.Join(allow, ", ")), 0o600)
	os.WriteFile(filepath.Join(dir, "agent.yaml"), fmt.Appendf(nil, `name: bench
private_key: %s
relays:
  - address: 127.0.0.1:%d
    public_key: %s
transport: %s
admin: off
port_mapping: off
expose:
%s`, ak, relayPort, rk.Public(), transport, strings.Join(expose, "")), 0o600)
	relayPID = startProcess(b, []string{bin}, "relay", filepath.Join(dir, "relay.yaml"))
	agentPID = startProcess(b, agentCmd, "agent", filepath.Join(dir, "agent.yaml"))
	last := public[len(public)-1]
	testenv.WaitFor(b, 20*time.Second, "exposure reachable", func() bool {
		c, err := net.DialTimeout("tcp", last, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write([]byte{1})
		_, err = c.Read(make([]byte, 1))
		return err == nil
	})
	return relayPID, agentPID, public
}

func buildBinary(b *testing.B, env ...string) string {
	out := filepath.Join(b.TempDir(), "pinhole")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "../cmd/pinhole")
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, msg)
	}
	return out
}

func startProcess(b *testing.B, command []string, role, cfg string) int {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, command[0], append(command[1:], role, "-c", cfg)...)
	// BENCH_GCTRACE=1 prints the agent's GC trace (heap sizes under load).
	if role == "agent" && os.Getenv("BENCH_GCTRACE") != "" {
		cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
		cmd.Stderr = os.Stderr
	}
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); cmd.Wait() })
	return cmd.Process.Pid
}

// rssMiB reads VmRSS of a process from /proc.
func rssMiB(b *testing.B, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
