package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// BenchmarkRelayIdleAgents runs one real `pinhole relay` process on
// loopback and N agents inside the benchmark process, each with its own
// UDP socket and key and one exposed TCP port; all of them share one
// source address (127.0.0.1), as routers behind one carrier-grade NAT do.
// Reported once, before the loop: seconds until every exposed port
// accepts (its listener is up; each is then confirmed by a connection,
// see serveProbe), relay RSS per idle agent, relay CPU while they idle,
// relay heap. Each iteration restarts the relay (SIGTERM, then a new
// process on the same port and state file) and reports seconds until
// every exposed port accepts again: the reconnect storm.
//
// N is PINHOLE_BENCH_AGENTS (default 300, about two minutes);
// PINHOLE_BENCH_IDLE is the idle window in seconds (default 30). For the
// figures of issue 12:
//
//	PINHOLE_BENCH_AGENTS=1000 go test -run '^$' -bench RelayIdleAgents -benchtime 1x -timeout 30m ./bench/
//	PINHOLE_BENCH_AGENTS=10000 PINHOLE_BENCH_IDLE=60 go test -run '^$' -bench RelayIdleAgents -benchtime 1x -timeout 60m ./bench/
//
// The agents' own CPU shares the machine with the relay, so on a small
// machine the connect and restart times include the agents' cost too.
// PINHOLE_BENCH_TRACE=1 prints a once-a-second timeline of the connect,
// the idle window and the restart (printed anyway when an agent found the
// relay silent); PINHOLE_BENCH_AGENTS_PROFILE=FILE writes a CPU profile
// of the agents' side of the restart.
func BenchmarkRelayIdleAgents(b *testing.B) {
	n := envInt(b, "PINHOLE_BENCH_AGENTS", 300)
	idle := time.Duration(envInt(b, "PINHOLE_BENCH_IDLE", 30)) * time.Second
	raiseFileLimit(b, n+2048) // each process holds about one descriptor per agent: its UDP socket here, its listener in the relay
	bin := buildBinary(b)
	echo := helperProcess(b, echoEnv+"=1").addr // the agents' local service, in a process of its own
	fleet := newFleet(b, n, echo)
	relay := fleet.startRelay(b, bin)
	time.Sleep(2 * time.Second) // the relay's own start-up allocations settle
	rss0 := rssMiB(b, relay.pid)

	start := time.Now()
	tl := startTimeline(relay.pid, fleet, start)
	fleet.startAgents(b)
	_, _, _, connect := fleet.waitAccepting(b, start, 10*time.Minute)
	b.Logf("connect: every port listening after %v, confirmed by a connection after %v", connect.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	b.Logf("connect: agents logged: %s", fleet.logs.take())

	// Idle: agents heartbeat, nothing else flows. RSS after the window,
	// CPU over its second half (after the connect burst's GC has run).
	time.Sleep(idle / 2)
	cpu0, self0, t0 := cpuTicks(b, relay.pid), cpuTicks(b, os.Getpid()), time.Now()
	time.Sleep(idle / 2)
	cpu1, self1, t1 := cpuTicks(b, relay.pid), cpuTicks(b, os.Getpid()), time.Now()
	rss1 := rssMiB(b, relay.pid)
	heap, heapOK := relayHeap(fleet.admin)
	b.Logf("idle: relay counters: %v", relayCounters(fleet.admin))
	if lines := tl.stop(); tl.silent > 0 || os.Getenv("PINHOLE_BENCH_TRACE") != "" {
		// Printed, not logged: a benchmark's log keeps about ten lines.
		fmt.Printf("timeline until the end of the idle window (s since start: relay CPU %%, agents' CPU %%, agents' GCs, agents that found the relay silent):\n%s", lines)
	}
	b.Logf("idle: agents logged: %s", fleet.logs.take())
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		b.Logf("idle: the benchmark's process (the agents) holds %d descriptors", len(fds))
	}
	if st, ok := readStatus(fleet.admin); ok {
		perAgent := func(v float64) float64 { return v / 1024 / float64(n) }
		b.Logf("idle: relay per agent: rss %.1f KiB, heap in use %.1f KiB, marked live by the last GC %.1f KiB, goroutine stacks %.1f KiB",
			perAgent(st.Process.RSS), perAgent(st.Process.HeapInuse), perAgent(st.Process.HeapLive), perAgent(st.Process.Stacks))
	}

	var restarts, relayViews time.Duration
	for b.Loop() {
		// The confirming connections woke every link's data conversation;
		// they park again after 10 s of quiet. A restart comes to an idle
		// fleet, as it would in service.
		time.Sleep(15 * time.Second)
		stopProfile := profileAgents(b)
		start, self0 := time.Now(), cpuTicks(b, os.Getpid())
		relay.stop(b)
		stopped := time.Since(start)
		relay = fleet.startRelay(b, bin)
		stop := make(chan struct{})
		listed := watchOpen(fleet.admin, n, start, stop)
		tl := startTimeline(relay.pid, fleet, start)
		first, median, p90, all := fleet.waitAccepting(b, start, 10*time.Minute)
		confirmed := time.Since(start)
		restarts += all
		stopProfile()
		close(stop)
		if lines := tl.stop(); tl.silent > 0 || os.Getenv("PINHOLE_BENCH_TRACE") != "" {
			fmt.Printf("timeline of the restart (s since the old relay was told to stop; columns as above):\n%s", lines)
		}
		view := <-listed
		if view > 0 {
			relayViews += view
		}
		b.Logf("restart: old relay stopped in %v; first port back after %v, half after %v, 90%% after %v, all after %v, all confirmed by a connection after %v (the relay listed all open after %v); CPU meanwhile: new relay %.1f s, agents %.1f s; relay counters: %v",
			stopped.Round(time.Millisecond), first.Round(time.Millisecond), median.Round(time.Millisecond), p90.Round(time.Millisecond),
			all.Round(time.Millisecond), confirmed.Round(time.Millisecond), view.Round(time.Millisecond), float64(cpuTicks(b, relay.pid))/clockTicks, float64(cpuTicks(b, os.Getpid())-self0)/clockTicks, relayCounters(fleet.admin))
		b.Logf("restart: agents logged: %s", fleet.logs.take())
	}
	relay.stop(b)
	// Reported after the loop: b.Loop's first call clears earlier metrics.
	b.ReportMetric(restarts.Seconds()/float64(b.N), "s-restart")
	b.ReportMetric(relayViews.Seconds()/float64(b.N), "s-restart-relay-view")
	b.ReportMetric(connect.Seconds(), "s-connect")
	b.ReportMetric((rss1-rss0)*1024/float64(n), "relay-KiB/agent")
	b.ReportMetric(rss1, "relay-RSS-MiB")
	b.ReportMetric(100*float64(cpu1-cpu0)/clockTicks/t1.Sub(t0).Seconds(), "relay-idle-CPU%")
	// The agents' side of idling (all N in this process, the benchmark's
	// own sampling included): per agent, in millionths of a core.
	b.ReportMetric(1e6*float64(self1-self0)/clockTicks/t1.Sub(t0).Seconds()/float64(n), "agent-idle-ppm-of-a-core")
	if heapOK {
		b.ReportMetric(heap/(1<<20), "relay-heap-MiB")
		b.ReportMetric(heap/1024/float64(n), "relay-heap-KiB/agent")
	}
}

// profileAgents writes a CPU profile of the benchmark's process (the
// agents) to the file PINHOLE_BENCH_AGENTS_PROFILE names, from now until
// the returned function is called: the agents' side of one restart.
func profileAgents(b *testing.B) func() {
	path := os.Getenv("PINHOLE_BENCH_AGENTS_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// timeline samples, once a second, the relay's and the agents' CPU, the
// agents' process's collections and how many agents found the relay
// silent: when links die in a crowd, it shows which process stalled first.
type timeline struct {
	stopCh chan struct{}
	done   chan string
	silent int
}

func startTimeline(relayPid int, f *fleet, start time.Time) *timeline {
	tl := &timeline{stopCh: make(chan struct{}), done: make(chan string, 1)}
	go func() {
		var lines strings.Builder
		t := time.NewTicker(time.Second)
		defer t.Stop()
		rel, self, gcs := ticksOf(relayPid), ticksOf(os.Getpid()), gcCount()
		for {
			select {
			case <-tl.stopCh:
				tl.done <- lines.String()
				return
			case <-t.C:
			}
			r, s, g := ticksOf(relayPid), ticksOf(os.Getpid()), gcCount()
			fmt.Fprintf(&lines, "  %3.0f: relay %3d %%, agents %3d %%, %d GCs, %d silent, %d ports accepting\n",
				time.Since(start).Seconds(), r-rel, s-self, g-gcs, f.logs.matching("relay silent"), f.accepting.Load())
			rel, self, gcs = r, s, g
		}
	}()
	return tl
}

// stop ends the sampling and returns its lines.
func (tl *timeline) stop() string {
	close(tl.stopCh)
	s := <-tl.done
	tl.silent = strings.Count(s, "silent") - strings.Count(s, " 0 silent")
	return s
}

// ticksOf is readTicks, 0 when unreadable.
func ticksOf(pid int) int64 {
	t, _ := readTicks(pid)
	return t
}

func gcCount() uint32 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.NumGC
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on
// every Linux the project runs on).
const clockTicks = 100

// fleet is N agent configurations and the relay configuration that lists
// them, with one exposed port each.
type fleet struct {
	dir, cfg, admin string
	relayKey        secure.PrivateKey
	relayPort       uint16
	agents          []*agent.Config
	ports           []uint16
	logs            logTally     // what the agents logged at warning level and above
	accepting       atomic.Int64 // exposed ports found accepting by the running waitAccepting
}

func newFleet(b *testing.B, n int, local string) *fleet {
	f := &fleet{dir: b.TempDir(), relayKey: testenv.Key(b), relayPort: testenv.FreePort(b)}
	f.admin = "127.0.0.1:" + strconv.Itoa(int(testenv.FreePort(b)))
	var entries strings.Builder
	next := uint16(exposedPortsFrom)
	for i := range n {
		port := freePortFrom(b, &next)
		k := testenv.Key(b)
		name := "a" + strconv.Itoa(i)
		fmt.Fprintf(&entries, "  - name: %s\n    public_key: %s\n    allow_ports: [%d]\n", name, k.Public(), port)
		f.ports = append(f.ports, port)
		f.agents = append(f.agents, &agent.Config{Name: name, PrivateKey: k, Transport: agent.TransportUDP,
			Relays:    []agent.Relay{{Address: "127.0.0.1:" + strconv.Itoa(int(f.relayPort)), PublicKey: f.relayKey.Public()}},
			Heartbeat: 15 * time.Second, Tuning: link.DefaultTuning(),
			Expose: []agent.Exposure{{Name: "svc", Proto: protocol.ProtoTCP, Local: local, RemotePort: port}}})
	}
	f.cfg = filepath.Join(f.dir, "relay.yaml")
	err := os.WriteFile(f.cfg, fmt.Appendf(nil, `listen: 127.0.0.1:%d
private_key: %s
bind: 127.0.0.1
admin: %s
state_file: %s
log:
  level: %s
agents:
%s`, f.relayPort, f.relayKey, f.admin, filepath.Join(f.dir, "relay.state"), relayLogLevel(), entries.String()), 0o600)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// exposedPortsFrom is where the fleet's exposed ports start: below the
// kernel's ephemeral range (32768 and up by default), so no socket the
// benchmark or the agents open takes one meanwhile. Asking the kernel for
// free ports instead returns the same few again and again once thousands
// are picked (it scans from a random offset for a free one, and the
// picked ones are free until the relay listens).
const exposedPortsFrom = 12000

// freePortFrom returns the first port from *next on that testenv can
// claim (free for TCP and UDP on 127.0.0.1, never handed out before), and
// moves *next past it.
func freePortFrom(b *testing.B, next *uint16) uint16 {
	for ; *next < 32768; *next++ {
		if testenv.ClaimPort(*next) {
			*next++
			return *next - 1
		}
	}
	b.Fatal("no free port below 32768 for the fleet's exposures")
	return 0
}

// startAgents runs every agent until the benchmark ends.
func (f *fleet) startAgents(b *testing.B) {
	log := slog.New(slog.NewTextHandler(&f.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })
	for _, cfg := range f.agents {
		a, err := agent.New(cfg, log)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { a.Run(ctx) })
	}
}

// waitAccepting returns once every exposed port is back: listening, and
// confirmed by a connection (serveProbe); it returns when the first, the
// median, the 90th percentile and the last port started listening (since
// start).
// The prober is a process of its own: inside this one its goroutines
// queued behind the 10,000 agents' during a storm, and a port the relay
// had opened was seen up to 20 s late (the relay's log against the dials).
func (f *fleet) waitAccepting(b *testing.B, start time.Time, limit time.Duration) (first, median, p90, all time.Duration) {
	f.accepting.Store(0)
	seen, confirmed := probeProcess(b, f.ports, limit, func(time.Time) { f.accepting.Add(1) })
	if !confirmed {
		b.Fatalf("after %v, %d of %d exposed ports listening, not all of them confirmed by a connection", limit, len(seen), len(f.ports))
	}
	times := make([]time.Duration, len(seen))
	for i, at := range seen {
		times[i] = at.Sub(start)
	}
	slices.Sort(times)
	return times[0], times[len(times)/2], times[len(times)*9/10], times[len(times)-1]
}

// relayLogLevel is info when PINHOLE_BENCH_RELAY_LOG asks for the relay's
// log (see startRelay), warn otherwise.
func relayLogLevel() string {
	if os.Getenv("PINHOLE_BENCH_RELAY_LOG") != "" {
		return "info"
	}
	return "warn"
}

// relayProc is one run of the relay binary.
type relayProc struct {
	pid  int
	cmd  *exec.Cmd
	done chan struct{}
}

func (f *fleet) startRelay(b *testing.B, bin string) *relayProc {
	cmd := exec.Command(bin, "relay", "-c", f.cfg)
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if path := os.Getenv("PINHOLE_BENCH_RELAY_LOG"); path != "" {
		// Every relay of the run logs at info level into this file (the
		// moments agents connect and exposures open, for a storm's
		// anatomy; the config's warn level keeps a normal run quiet).
		out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		cmd.Stderr = out
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &relayProc{pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	b.Cleanup(func() { cmd.Process.Kill(); <-p.done })
	return p
}

// stop ends the relay as a service manager would: SIGTERM (the relay
// tells every agent it is going), SIGKILL if it has not exited in 20 s.
func (p *relayProc) stop(b *testing.B) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		b.Logf("relay did not stop within 20 s of SIGTERM; killing it")
		p.cmd.Process.Kill()
		<-p.done
	}
}

// cpuTicks is a process's user plus system time from /proc/PID/stat.
func cpuTicks(b *testing.B, pid int) int64 {
	t, err := readTicks(pid)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func readTicks(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields from after its closing one (field 3 is the state).
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(fields[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return utime + stime, nil
}

// relayStatus is the part of the relay's status document read here.
type relayStatus struct {
	Counters map[string]uint64 `json:"counters"`
	Process  struct {
		HeapInuse float64 `json:"heap_inuse"`
		HeapLive  float64 `json:"heap_live"`
		Stacks    float64 `json:"stacks"`
		RSS       float64 `json:"rss"`
	} `json:"process"`
	Agents []struct {
		Exposures []json.RawMessage `json:"exposures"`
	} `json:"agents"`
}

// watchOpen reads the relay's status document every quarter second (at
// most half the time, as it costs the relay a document listing every
// agent) until it lists n open exposures, and
// sends how long after start that was; 0 if stop closes first. It is the relay's own view of the storm,
// apart from the port prober's rounds: with thousands of agents' goroutines
// crowding the benchmark process's two cores, one round of dials took up
// to 14 s at 3,000 agents, and a port's time is the time it was dialed.
func watchOpen(admin string, n int, start time.Time, stop <-chan struct{}) <-chan time.Duration {
	out := make(chan time.Duration, 1)
	go func() {
		for {
			t0 := time.Now()
			st, ok := readStatus(admin)
			took := time.Since(t0)
			if ok {
				open := 0
				for _, a := range st.Agents {
					open += len(a.Exposures)
				}
				if open >= n {
					out <- time.Since(start)
					return
				}
			}
			select {
			case <-stop:
				out <- 0
				return
			case <-time.After(max(time.Second, 4*took)): // writing it costs the relay CPU: at most a fifth of its time
			}
		}
	}()
	return out
}

// readStatus reads the relay's status endpoint.
func readStatus(addr string) (relayStatus, bool) {
	var st relayStatus
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return st, false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return st, json.NewDecoder(c).Decode(&st) == nil
}

// relayHeap reads heap_inuse from the relay's status endpoint.
func relayHeap(addr string) (float64, bool) {
	st, ok := readStatus(addr)
	return st.Process.HeapInuse, ok && st.Process.HeapInuse > 0
}

// relayCounters are the handshake counters of the relay, for the log.
func relayCounters(addr string) string {
	st, ok := readStatus(addr)
	if !ok {
		return "(status unreadable)"
	}
	var out []string
	for _, k := range []string{"handshakes", "handshake_dropped", "handshake_coalesced", "handshake_resent", "cookies_sent", "pending_discarded", "replayed", "replaced", "links_parked", "link_parks", "link_wakes"} {
		out = append(out, fmt.Sprintf("%s=%d", k, st.Counters[k]))
	}
	return strings.Join(out, " ")
}

// raiseFileLimit lifts RLIMIT_NOFILE to at least want (within the hard
// limit); the relay process inherits it.
func raiseFileLimit(b *testing.B, want int) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		b.Fatal(err)
	}
	if l.Cur >= uint64(want) {
		return
	}
	hard := l.Max
	l.Cur, l.Max = uint64(want), max(l.Max, uint64(want)) // a higher hard limit takes root
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		b.Fatalf("RLIMIT_NOFILE: need %d, hard limit %d: %v (run as root, or raise it with ulimit -Hn)", want, hard, err)
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
