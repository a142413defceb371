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
)

// probeEnv makes the test binary the relay-scale benchmark's port prober
// instead of running tests (see TestMain): it reads ports from stdin, one
// per line, prints "listening PORT UNIX-NANOS" as each port's listener
// comes up, then "confirmed" once every port took a connection.
const probeEnv = "PINHOLE_BENCH_PROBE"

// confirmRate bounds the prober's confirming dials per second.
const confirmRate = 1000

// serveProbe is the prober's process. A port is back when the kernel
// lists a listening socket on it (listeningTCPPorts, read about every
// 50 ms): from then on the kernel completes every connection to it, and
// that moment is the one timed. Once every port is back, each is dialed
// once, at most confirmRate a second, so "all back" still means every
// port took a connection. The dials come after the timing and paced
// because each one is a tunneled connection (the agent dials its local
// service, both ends wake the link's data conversation and park it again
// 10 s later): dialed while the fleet came back, ten thousand of them
// left the agents' process (all of them on the benchmark's two cores)
// with seconds of scheduling delay, its heartbeats late and its links
// declared dead, a storm of the benchmark's own making that it then
// measured. Without the kernel's table a port is back when it accepts a
// dial.
func serveProbe() {
	var ports []uint16
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() && sc.Text() != "" {
		p, err := strconv.ParseUint(sc.Text(), 10, 16)
		if err != nil {
			fmt.Println("bad port", sc.Text())
			os.Exit(1)
		}
		ports = append(ports, uint16(p))
	}
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }() // the benchmark gave up
	out := bufio.NewWriter(os.Stdout)
	left := ports
	for len(left) > 0 {
		listening, err := listeningTCPPorts()
		now := time.Now()
		still := left[:0]
		for _, p := range left {
			if err == nil && listening[p] || err != nil && dials(p) {
				fmt.Fprintf(out, "listening %d %d\n", p, now.UnixNano())
				continue
			}
			still = append(still, p)
		}
		out.Flush()
		left = still
		time.Sleep(50 * time.Millisecond)
	}
	next := make(chan uint16)
	var wg sync.WaitGroup
	pace := time.NewTicker(time.Second / confirmRate)
	for range 64 {
		wg.Go(func() {
			for p := range next {
				deadline := time.Now().Add(30 * time.Second)
				for !dials(p) {
					if time.Now().After(deadline) {
						fmt.Printf("port %d listens but took no connection in 30 s\n", p)
						os.Exit(1)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	for _, p := range ports {
		<-pace.C
		next <- p
	}
	close(next)
	wg.Wait()
	fmt.Println("confirmed")
}

// dials reports whether a TCP connection to the local port succeeds.
func dials(p uint16) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(p)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// probeProcess runs the prober over ports; it calls seen as each port
// comes back and returns when each came back, and whether every port was
// then confirmed by a connection within limit.
func probeProcess(b *testing.B, ports []uint16, limit time.Duration, seen func(time.Time)) (at []time.Time, confirmed bool) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), probeEnv+"=1")
	var list strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&list, "%d\n", p)
	}
	list.WriteString("\n")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close() // the prober exits when stdin closes
	if _, err := io.WriteString(stdin, list.String()); err != nil {
		b.Fatal(err)
	}
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && f[0] == "confirmed":
			return at, true
		case len(f) == 3 && f[0] == "listening":
			n, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				b.Fatalf("prober: %q", sc.Text())
			}
			t := time.Unix(0, n)
			at = append(at, t)
			seen(t)
		default:
			b.Fatalf("prober: %s", sc.Text())
		}
	}
	return at, false // killed at the limit
}
