// Command heartbeat measures what keeping an idle tunnel reachable costs
// behind NATs with different UDP mapping timeouts, and writes the table
// to docs/nat-matrix.md (its own section; make lab-matrix keeps it).
//
// Each row is a lab of its own (all rows run at once): an agent on a1
// behind a port-restricted gateway whose UDP mappings expire after the
// row's timeout. With heartbeat auto the agent first measures the mapping
// lifetime; then the tunnel idles for -idle, with requests from the
// internet client through the TCP exposure at random moments (each must
// come back intact, and the link must not be replaced). The agent's flow
// to the relay is counted at the gateway (nftables counters, IP bytes)
// between the requests; keepalives are the agent's answered heartbeats.
// Last, the gateway forgets its mappings (conntrack -F) right after a
// heartbeat, twice, and the time until a request is answered again is
// the price of a long interval.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pinhole/pinhole/lab"
)

// prefix names the namespaces; each row adds its index.
const prefix = "phhb"

type row struct {
	timeout   time.Duration // the NAT's UDP mapping timeout
	heartbeat string        // agent.yaml's heartbeat
	lifetime  time.Duration // measured (auto)
	idle      lab.IdleResult
	flushes   []time.Duration
	err       string
}

func main() {
	bin := flag.String("bin", "bin/pinhole", "pinhole binary")
	out := flag.String("out", "docs/nat-matrix.md", "markdown file whose heartbeat section is written")
	idle := flag.Duration("idle", 10*time.Minute, "idle time per row")
	probes := flag.Int("requests", 8, "requests at random moments during the idle time")
	flag.Parse()
	if why := lab.Available(); why != "" {
		fatal(fmt.Errorf("%s", why))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		lab.Down(prefix)
		os.Exit(1)
	}()
	lab.Down(prefix) // a previous run killed hard
	dir, err := os.MkdirTemp("", "pinhole-heartbeat-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	probe := filepath.Join(dir, "probe")
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	if out, err := exec.CommandContext(bctx, "go", "build", "-o", probe, "./lab/cmd/probe").CombinedOutput(); err != nil {
		fatal(fmt.Errorf("build probe: %v\n%s", err, out))
	}
	pinhole, _ := filepath.Abs(*bin)
	bins := lab.Binaries{Pinhole: pinhole, Probe: probe}

	rows := []*row{
		{timeout: 10 * time.Second, heartbeat: "auto"},
		{timeout: 30 * time.Second, heartbeat: "auto"},
		{timeout: 120 * time.Second, heartbeat: "auto"},
		{timeout: 30 * time.Second, heartbeat: "15s"},
		{timeout: 30 * time.Second, heartbeat: "25s"},
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, r := range rows {
		wg.Go(func() {
			run(bins, dir, fmt.Sprintf("%s%d-", prefix, i), r, *idle, *probes)
			fmt.Printf("%v NAT, heartbeat %s: %s\n", r.timeout, r.heartbeat, r.summary())
		})
	}
	wg.Wait()
	old, _ := os.ReadFile(*out)
	doc := lab.ReplaceSection(string(old), lab.HeartbeatHeading, render(rows, *idle, *probes, time.Since(start)))
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		fatal(err)
	}
	fmt.Println("wrote", *out)
	for _, r := range rows {
		if r.failed() {
			os.Exit(1)
		}
	}
}

func run(bins lab.Binaries, dir, prefix string, r *row, idle time.Duration, probes int) {
	// The row's lab processes die with ctx, whatever happens.
	ctx, cancel := context.WithTimeout(context.Background(), idle+25*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, prefix, map[string]lab.Site{"a": {Behaviour: lab.PortRestricted, Timeout: r.timeout}})
	if err != nil {
		r.err = err.Error()
		return
	}
	defer l.Close()
	rdir, _ := os.MkdirTemp(dir, "row-")
	d, err := lab.Deploy(ctx, l, bins, rdir, r.heartbeat, "a1")
	if err != nil {
		r.err = err.Error()
		return
	}
	tcp, _ := d.Exposure("a1")
	if _, err := d.WaitReachable("client", tcp, 30*time.Second); err != nil {
		r.err = err.Error()
		return
	}
	if r.heartbeat == "auto" {
		if r.lifetime, _, err = d.WaitLifetime(ctx, "a1", 15*time.Minute); err != nil {
			r.err = err.Error()
			return
		}
	}
	time.Sleep(5 * time.Second) // NAT discovery and the retuned interval settle
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(r.timeout)))
	if r.idle, err = d.Idle(ctx, "a1", idle, probes, rng); err != nil {
		r.err = err.Error()
		return
	}
	for range 2 {
		took, _, err := d.FlushRecovery(ctx, "a1", 5*time.Minute)
		if err != nil {
			r.err = err.Error()
			return
		}
		r.flushes = append(r.flushes, took)
	}
}

func (r *row) failed() bool {
	return r.err != "" || len(r.idle.Failed) > 0 || r.idle.Reconnect != ""
}

// minimum is the fewest keepalives that keep the mapping: one per timeout.
func (r *row) minimum() float64 { return float64(r.idle.Idle) / float64(r.timeout) }

func (r *row) summary() string {
	if r.err != "" {
		return "FAILED: " + r.err
	}
	up, upB := r.idle.PerHour(r.idle.Up)
	down, downB := r.idle.PerHour(r.idle.Down)
	s := fmt.Sprintf("lifetime %v, interval %v, %d keepalives (minimum %.0f), up %.0f pkt/h %.0f B/h, down %.0f pkt/h %.0f B/h, %d/%d requests ok, flush recovery %v",
		r.lifetime, r.idle.Heartbeat, r.idle.Keepalives, r.minimum(), up, upB, down, downB,
		len(r.idle.Probes)-len(r.idle.Failed), len(r.idle.Probes), r.flushes)
	if len(r.idle.Failed) > 0 {
		s += " FAILED requests: " + strings.Join(r.idle.Failed, "; ")
	}
	if r.idle.Reconnect != "" {
		s += " RECONNECTED: " + r.idle.Reconnect
	}
	return s
}

func render(rows []*row, idle time.Duration, probes int, took time.Duration) string {
	commit, _ := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	var s strings.Builder
	fmt.Fprintf(&s, "%s\n\nGenerated by `make lab-heartbeat` on %s at commit %s in %v (rows in parallel).\n\n",
		lab.HeartbeatHeading, time.Now().UTC().Format("2006-01-02 15:04 UTC"), strings.TrimSpace(string(commit)), took.Round(time.Second))
	fmt.Fprintf(&s, "Each row: an agent on a1 behind a port-restricted gateway whose idle UDP mappings expire after the "+
		"NAT timeout (conntrack and map timeouts). With `heartbeat: auto` it first measures the mapping lifetime; then "+
		"the tunnel idles %v with %d requests from the internet client at random moments (1 KiB echoed through the TCP "+
		"exposure; every one must come back intact, and the agent's link must never be replaced). Datagrams and bytes "+
		"are counted at the gateway by nftables counters on the agent's UDP flow to the relay (IP bytes, headers "+
		"included), between the requests, and scaled to an hour; \"up\" is what the agent sends (each keepalive is "+
		"two datagrams: the Ping and KCP's ACK of the Pong), \"both\" adds the relay's answers. Keepalives are the "+
		"agent's answered heartbeats over the whole idle time, against the minimum of one per NAT timeout. Recovery: "+
		"the gateway forgets every mapping (conntrack -F) right after a heartbeat, the worst moment; the time until a "+
		"request through the exposure is answered again, twice. "+
		"Requests are traffic too, so a beat due after one is skipped: where the interval is long next to the "+
		"gaps between requests (120 s) the counts are lower than an idle tunnel's without requests (one keepalive per "+
		"0.95 x interval on average).\n\n", idle, probes)
	s.WriteString("| NAT timeout | heartbeat | measured lifetime | interval | keepalives (minimum, ratio) | datagrams/h up | bytes/h up | datagrams/h both | bytes/h both | requests | recovery after a flush |\n")
	s.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.err != "" {
			fmt.Fprintf(&s, "| %v | %s | FAILED: %s |||||||||\n", r.timeout, r.heartbeat, r.err)
			continue
		}
		up, upB := r.idle.PerHour(r.idle.Up)
		down, downB := r.idle.PerHour(r.idle.Down)
		lifetime := "-"
		if r.lifetime > 0 {
			lifetime = r.lifetime.String()
		}
		var rec []string
		for _, f := range r.flushes {
			rec = append(rec, fmt.Sprintf("%.1f s", f.Seconds()))
		}
		reqs := fmt.Sprintf("%d/%d ok", len(r.idle.Probes)-len(r.idle.Failed), len(r.idle.Probes))
		if r.idle.Reconnect != "" {
			reqs += ", **reconnected**"
		}
		fmt.Fprintf(&s, "| %v | %s | %s | %v | %d (%.0f, %.2fx) | %.0f | %.0f | %.0f | %.0f | %s | %s |\n",
			r.timeout, r.heartbeat, lifetime, r.idle.Heartbeat, r.idle.Keepalives, r.minimum(),
			float64(r.idle.Keepalives)/r.minimum(), up, upB, up+down, upB+downB, reqs, strings.Join(rec, ", "))
	}
	return s.String()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "heartbeat:", err)
	os.Exit(1)
}
