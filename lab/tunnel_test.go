package lab

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestTunnelBehindEachNAT: for every behaviour, and behind carrier-grade
// NAT, an agent on a site host registers with the relay and both a TCP
// and a UDP exposure work from the internet client with intact payloads.
// Behind the UDP-blocking gateway the TCP fallback carries everything.
func TestTunnelBehindEachNAT(t *testing.T) {
	type variant struct {
		name string
		site Site
	}
	var variants []variant
	for _, b := range Behaviours {
		variants = append(variants, variant{b.String(), Site{Behaviour: b}})
	}
	variants = append(variants, variant{"port-restricted+cgnat", Site{Behaviour: PortRestricted, CGNAT: true}},
		variant{"symmetric+cgnat", Site{Behaviour: Symmetric, CGNAT: true}})
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			l := up(t, map[string]Site{"a": v.site})
			tu := startTunnel(t, l, "a1", tunnelOpts{})
			r := tu.tcpCheck(t, 2<<20)
			if !r.Intact {
				t.Fatalf("tcp exposure: %d of %d bytes echoed, sha256 equal=%v (%s)", r.Echoed, r.Bytes, r.Intact, r.Error)
			}
			u := tu.udpCheck(t, 300)
			st := tu.status(t)
			t.Logf("%s: connected after %v via %v; tcp 2 MiB echo intact in %.2fs; udp %d/%d intact, %d corrupt",
				v.name, tu.connectedAfter.Round(time.Millisecond), st["transport"], r.Seconds, u.Received, u.Sent, u.Corrupt)
			if u.Corrupt > 0 || u.Received < u.Sent*99/100 {
				t.Fatalf("udp exposure: %d of %d datagrams came back, %d corrupt", u.Received, u.Sent, u.Corrupt)
			}
			want := "udp"
			if v.site.Behaviour == UDPBlocked {
				want = "tcp"
			}
			if st["transport"] != want {
				t.Fatalf("agent transport %v, want %s", st["transport"], want)
			}
		})
	}
}

// TestMappingFlush: the gateway forgets every mapping (conntrack -F and
// its mapping tables, as a rebooted router does); the tunnel must come
// back by itself. Behind a symmetric NAT the agent's public port changes,
// so the relay has to follow it.
func TestMappingFlush(t *testing.T) {
	for _, b := range []Behaviour{FullCone, PortRestricted, Symmetric} {
		t.Run(b.String(), func(t *testing.T) {
			l := up(t, map[string]Site{"a": {Behaviour: b}})
			tu := startTunnel(t, l, "a1", tunnelOpts{heartbeat: "2s"})
			before := tu.status(t)["public_addr"]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.FlushMappings(ctx, "a"); err != nil {
				t.Fatal(err)
			}
			took := tu.waitReachable(t, 30*time.Second)
			after := tu.status(t)["public_addr"]
			t.Logf("%s: mapping flushed; exposure reachable again after %v (public address %v -> %v)", b, took.Round(time.Millisecond), before, after)
			if r := tu.tcpCheck(t, 1<<20); !r.Intact {
				t.Fatalf("after recovery: %d of %d bytes intact (%s)", r.Echoed, r.Bytes, r.Error)
			}
		})
	}
}

// TestRelayRestartInLab kills the relay (SIGKILL, as a crash) and starts
// it again: the agent re-registers and the exposure works again.
func TestRelayRestartInLab(t *testing.T) {
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted}})
	tu := startTunnel(t, l, "a1", tunnelOpts{})
	time.Sleep(3 * time.Second) // the relay writes its state file 100 ms after the session went live
	tu.relay.Signal(syscall.SIGKILL)
	<-tu.relay.Done()
	killed := time.Now()
	tu.startRelay(t)
	took := tu.waitReachable(t, 60*time.Second)
	t.Logf("relay killed and restarted: exposure back %v after the kill", time.Since(killed).Round(time.Millisecond))
	_ = took
	if r := tu.tcpCheck(t, 1<<20); !r.Intact {
		t.Fatalf("after restart: %d of %d bytes intact (%s)", r.Echoed, r.Bytes, r.Error)
	}
}

// TestRelayKillLongHeartbeat: the agent's heartbeat is 10 minutes (as when
// tuned to a long NAT lifetime), so nothing it sends would notice a killed
// relay for minutes; the restarted relay's invitation (state_file) brings
// it back within 3 s of the relay's start, through the NAT.
func TestRelayKillLongHeartbeat(t *testing.T) {
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted}})
	tu := startTunnel(t, l, "a1", tunnelOpts{heartbeat: "10m"})
	time.Sleep(3 * time.Second) // the relay writes its state file 100 ms after the session went live
	tu.relay.Signal(syscall.SIGKILL)
	<-tu.relay.Done()
	tu.startRelay(t)
	restarted := time.Now()
	tu.waitReachable(t, 20*time.Second)
	back := time.Since(restarted)
	t.Logf("10 min heartbeat: exposure back %v after the relay's restart", back.Round(time.Millisecond))
	if back > 3*time.Second {
		t.Fatalf("exposure back %v after the restart, want within 3 s", back)
	}
}

// TestLossyLink: 1% loss and 20 ms delay each way on the site's uplink.
// Transfers must be intact; goodput is reported beside plain TCP over the
// same emulated link.
func TestLossyLink(t *testing.T) {
	l := up(t, map[string]Site{"a": {Behaviour: PortRestricted, LossPct: 1, Delay: 20 * time.Millisecond}})
	tu := startTunnel(t, l, "a1", tunnelOpts{})
	if _, err := l.Start(testCtx(t), "relay", bins.probe, "tcp-echo", RelayIP+":8100"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	const n = 4 << 20
	tun := tu.tcpCheck(t, n)
	plain := tu.TCPCheck("a1", RelayIP+":8100", n)
	t.Logf("1%% loss and 20 ms delay each way, 4 MiB echoed: tunnel %.1f Mbit/s (intact=%v), plain TCP on the same link %.1f Mbit/s (intact=%v), ratio %.2f",
		tun.Mbps, tun.Intact, plain.Mbps, plain.Intact, tun.Mbps/plain.Mbps)
	if !tun.Intact {
		t.Fatalf("tunnel over a lossy link: %d of %d bytes intact (%s)", tun.Echoed, tun.Bytes, tun.Error)
	}
	u := tu.udpCheck(t, 300)
	t.Logf("udp over the lossy link: %d/%d echoed (each datagram crosses the lossy hop only inside KCP, which retransmits)", u.Received, u.Sent)
	if u.Corrupt > 0 {
		t.Fatalf("%d corrupt datagrams", u.Corrupt)
	}
}
