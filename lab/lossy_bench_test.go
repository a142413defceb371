package lab

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkLossyLink moves data through the tunnel over an emulated access
// link (20 ms each way, 1% and 5% random loss each way, on the site's
// uplink) and, in the same run, plain TCP over the same link (the host's
// default congestion control; the namespaces inherit it). The UDP
// transport runs behind a port-restricted NAT; the TCP fallback behind a
// site that blocks UDP. Every byte is echoed and compared (sha256).
//
// Metrics: Mbit/s of each, and the tunnel's ratio to plain TCP. Run with
// `make bench` (as root; the lab skips loudly otherwise).
func BenchmarkLossyLink(b *testing.B) {
	const size = 32 << 20
	for _, loss := range []float64{1, 5} {
		for _, transport := range []string{"udp", "tcp"} {
			b.Run(fmt.Sprintf("loss=%g%%/%s", loss, transport), func(b *testing.B) {
				behaviour := PortRestricted
				if transport == "tcp" {
					behaviour = UDPBlocked
				}
				l := up(b, map[string]Site{"a": {Behaviour: behaviour, LossPct: loss, Delay: 20 * time.Millisecond}})
				tu := startTunnel(b, l, "a1", tunnelOpts{})
				if _, err := l.Start(testCtx(b), "relay", bins.probe, "tcp-echo", RelayIP+":8100"); err != nil {
					b.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
				var tunMbps, plainMbps float64
				for b.Loop() {
					tun := tu.tcpCheck(b, size)
					plain := tu.TCPCheck("a1", RelayIP+":8100", size)
					if !tun.Intact || !plain.Intact {
						b.Fatalf("not intact: tunnel %d of %d (%s), plain %d of %d (%s)",
							tun.Echoed, tun.Bytes, tun.Error, plain.Echoed, plain.Bytes, plain.Error)
					}
					tunMbps, plainMbps = tun.Mbps, plain.Mbps
				}
				b.ReportMetric(tunMbps, "tunnel-Mbit/s")
				b.ReportMetric(plainMbps, "plainTCP-Mbit/s")
				b.ReportMetric(tunMbps/plainMbps, "x-plainTCP")
			})
		}
	}
}
