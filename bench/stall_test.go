package bench

import (
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol"
)

// BenchmarkStalledReaders: 64 clients open a download that never ends on
// one exposure and never read it, while another exposure of the same
// agent serves a 32 MiB download (issue 13: at least 80 % of its unloaded
// throughput, heartbeats under 100 ms). It reports the download's
// throughput beside the stalled readers as a ratio of the unloaded one
// (best of 3 each), the round trip of a one-byte echo on a new stream
// during a further loaded download (the heartbeat skips its Pings while the
// link is busy), and the heartbeat's own RTT (Ping to Pong on the control
// stream) beside the stalled readers between downloads. Nothing here
// passes or fails on speed.
func BenchmarkStalledReaders(b *testing.B) {
	const stalled, size = 64, 32 << 20
	payload := make([]byte, size)
	ports := map[string]uint16{}
	rcfg := testenv.RelayConfig(b, "127.0.0.1:0")
	acfg := testenv.AgentConfig(b, "", rcfg.PrivateKey)
	acfg.Transport, acfg.Heartbeat = agent.TransportUDP, 250*time.Millisecond
	for name, local := range map[string]string{
		"forever": testenv.ServeTCP(b, func(c *net.TCPConn) {
			defer c.Close()
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
			}
		}),
		"bulk": testenv.ServeTCP(b, func(c *net.TCPConn) {
			defer c.Close()
			c.Write(payload)
			c.CloseWrite()
			io.Copy(io.Discard, c)
		}),
		"echo": testenv.EchoTCP(b),
	} {
		ports[name] = testenv.FreePort(b)
		acfg.Expose = append(acfg.Expose, agent.Exposure{Name: name, Proto: protocol.ProtoTCP, Local: local, RemotePort: ports[name]})
	}
	testenv.Allow(rcfg, acfg, ports["forever"], ports["bulk"], ports["echo"])
	r, _, _ := testenv.StartRelay(b, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a, _, _ := testenv.StartAgent(b, acfg)
	testenv.WaitFor(b, 15*time.Second, "exposures open", func() bool {
		return testenv.Exposed(r, "forever") && testenv.Exposed(r, "bulk") && testenv.Exposed(r, "echo")
	})
	addr := func(name string) string { return "127.0.0.1:" + strconv.Itoa(int(ports[name])) }
	best := func() time.Duration {
		d := time.Duration(1 << 62)
		for range 3 {
			d = min(d, download(b, addr("bulk"), size))
		}
		return d
	}
	download(b, addr("bulk"), size) // warm up
	for b.Loop() {
		unloaded := best()
		d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		var conns []net.Conn
		for range stalled {
			c, err := d.Dial("tcp", addr("forever"))
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
		}
		reset0 := r.Counters()["streams_stalled_reset"]
		want := uint64(stalled - link.DefaultTuning().StallSlots())
		testenv.WaitFor(b, 90*time.Second, "the stall guard to reset the streams beyond its slots", func() bool {
			return r.Counters()["streams_stalled_reset"]-reset0 >= want
		})
		hb := heartbeatRTTs(a, 5*time.Second)
		loaded := best()
		// The probes are a load of their own: timed in a download of
		// their own, not in the ones compared.
		rtts := echoesDuring(b, addr("echo"), func() { download(b, addr("bulk"), size) })
		for _, c := range conns {
			c.Close()
		}
		b.ReportMetric(mbits(size, unloaded), "unloaded-Mbit/s")
		b.ReportMetric(mbits(size, loaded), "loaded-Mbit/s")
		b.ReportMetric(unloaded.Seconds()/loaded.Seconds(), "x-unloaded")
		b.ReportMetric(millis(percentile(rtts, 50)), "stream-rtt-p50-ms")
		b.ReportMetric(millis(percentile(rtts, 99)), "stream-rtt-p99-ms")
		b.ReportMetric(millis(percentile(hb, 50)), "heartbeat-rtt-p50-ms")
		b.ReportMetric(millis(percentile(hb, 99)), "heartbeat-rtt-p99-ms")
		b.Logf("%d stalled readers: download %v unloaded, %v beside them; %d stream round trips during it, %d heartbeats beside the stalled readers",
			stalled, unloaded.Round(time.Millisecond), loaded.Round(time.Millisecond), len(rtts), len(hb))
	}
}

// download reads a 32 MiB download to its end and returns how long it took.
func download(b *testing.B, addr string, size int64) time.Duration {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(start.Add(2 * time.Minute))
	if n, err := io.Copy(io.Discard, c); err != nil || n != size {
		b.Fatalf("download: %d bytes (err %v), want %d", n, err, size)
	}
	return time.Since(start)
}

// heartbeatRTTs collects the RTT of each Pong the agent gets for d.
func heartbeatRTTs(a *agent.Agent, d time.Duration) []time.Duration {
	var out []time.Duration
	last := a.Status().Counters["pongs"]
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		st := a.Status()
		if n := st.Counters["pongs"]; n != last {
			last = n
			out = append(out, time.Duration(st.RTTMillis*float64(time.Millisecond)))
		}
	}
	return out
}

// echoesDuring runs fn and meanwhile times, every 50 ms, a new connection
// to the echo at addr and one byte there and back.
func echoesDuring(b *testing.B, addr string, fn func()) []time.Duration {
	done, out := make(chan struct{}), make(chan []time.Duration)
	go func() {
		var rtts []time.Duration
		defer func() { out <- rtts }()
		one := make([]byte, 1)
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			start := time.Now()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			c.SetDeadline(start.Add(10 * time.Second))
			_, err = c.Write(one)
			if err == nil {
				_, err = io.ReadFull(c, one)
			}
			c.Close()
			if err != nil {
				b.Error(err)
				return
			}
			rtts = append(rtts, time.Since(start))
		}
	}()
	fn()
	close(done)
	return <-out
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
