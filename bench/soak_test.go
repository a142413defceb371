package bench

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/testenv"
)

// BenchmarkSoak is the churn soak: 16 clients in parallel each open a
// tunneled connection, echo 64 KiB through it, check it and close, over
// and over, against the real binary as two processes. It reports
// transfers, failures and how the resident memory and open file
// descriptors of relay and agent moved from the start to the end of the
// run (flat is the goal: growth per transfer is a leak). It runs for
// SOAK_DURATION (default 20s inside `make bench`; `make soak` runs 10m).
// Nothing here passes or fails on speed, but the soak fails (b.Errorf)
// when a transfer failed, when either process holds more than
// soakFDGrowth more fds at the end than after the warm-up, or when its
// RSS grew by more than soakRSSGrowth: the old leak (an agent connection
// and fd per aborted transfer, ~90 KB each) grows without bound, while
// the runtime's own heap growth after a 5 s warm-up stays a few MiB.
func BenchmarkSoak(b *testing.B) {
	d := 20 * time.Second
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			b.Fatalf("SOAK_DURATION=%q: %v", v, err)
		}
	}
	bin := buildBinary(b)
	relay, agent, public := startTunnelProcesses(b, bin, []string{bin}, "udp", testenv.EchoTCP(b))
	echo := public[0]
	payload := bytes.Repeat([]byte("pinhole soak 64k "), 64<<10/17+1)[:64<<10]
	for b.Loop() {
		// Warm up, then take the baseline the end is compared with.
		soak(echo, payload, 16, 5*time.Second)
		time.Sleep(time.Second)
		rss0A, rss0R := rssMiB(b, agent), rssMiB(b, relay)
		fd0A, fd0R := openFDs(agent), openFDs(relay)
		ok, failed := soak(echo, payload, 16, d)
		time.Sleep(2 * time.Second) // let closes settle
		rss1A, rss1R := rssMiB(b, agent), rssMiB(b, relay)
		fd1A, fd1R := openFDs(agent), openFDs(relay)
		b.ReportMetric(float64(ok), "transfers")
		b.ReportMetric(float64(failed), "failed")
		b.ReportMetric(float64(ok)/d.Seconds(), "transfers/s")
		b.ReportMetric(rss1A-rss0A, "agent-RSS-growth-MiB")
		b.ReportMetric(rss1R-rss0R, "relay-RSS-growth-MiB")
		b.ReportMetric(float64(fd1A-fd0A), "agent-fd-growth")
		b.ReportMetric(float64(fd1R-fd0R), "relay-fd-growth")
		b.Logf("soak %v: %d transfers, %d failed; agent RSS %.1f -> %.1f MiB, fds %d -> %d; relay RSS %.1f -> %.1f MiB, fds %d -> %d",
			d, ok, failed, rss0A, rss1A, fd0A, fd1A, rss0R, rss1R, fd0R, fd1R)
		if failed > 0 {
			b.Errorf("soak: %d of %d transfers failed, want none", failed, ok+failed)
		}
		for _, p := range []struct {
			role     string
			fd0, fd1 int
			r0, r1   float64
		}{{"agent", fd0A, fd1A, rss0A, rss1A}, {"relay", fd0R, fd1R, rss0R, rss1R}} {
			if p.fd1-p.fd0 > soakFDGrowth {
				b.Errorf("soak: %s holds %d fds, %d after the warm-up (more than %d: a leak)", p.role, p.fd1, p.fd0, soakFDGrowth)
			}
			if p.r1-p.r0 > soakRSSGrowth {
				b.Errorf("soak: %s RSS grew %.1f -> %.1f MiB (more than %.0f MiB after the warm-up: not flat)", p.role, p.r0, p.r1, soakRSSGrowth)
			}
		}
	}
}

// The soak's limits on growth from the warm-up to the end of the run.
const (
	soakFDGrowth  = 4    // fds: sockets still closing, the admin connection
	soakRSSGrowth = 16.0 // MiB: heap growth to the run's peak concurrency, not per transfer
)

// soak runs workers clients for d; each loops open, echo, verify, close.
func soak(addr string, payload []byte, workers int, d time.Duration) (ok, failed int64) {
	var nOK, nFail atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			got := make([]byte, len(payload))
			for time.Now().Before(deadline) {
				if err := echoOnce(addr, payload, got); err != nil {
					nFail.Add(1)
					continue
				}
				nOK.Add(1)
			}
		})
	}
	wg.Wait()
	return nOK.Load(), nFail.Load()
}

func echoOnce(addr string, payload, got []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	errc := make(chan error, 1)
	go func() { _, err := c.Write(payload); errc <- err }()
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echo corrupted")
	}
	return nil
}

// openFDs counts a process's open file descriptors.
func openFDs(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}
