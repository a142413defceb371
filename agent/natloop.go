package agent

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/pinhole/pinhole/agent/internal/netcheck"
	"github.com/pinhole/pinhole/protocol"
)

// natRecheckAfter bounds how long a report for the same relay and public
// address is trusted before a reconnect measures again: NATs are replaced
// rarely, and each check sends about a dozen small datagrams.
const natRecheckAfter = 6 * time.Hour

// natLoop is the NAT-discovery sibling: whenever a UDP link comes up, or
// the relay reports a new public address for the agent, it measures the
// NAT on the agent's own socket (package netcheck) and keeps the report
// for status (and, later, hole punching and heartbeat tuning).
func (a *Agent) natLoop(ctx context.Context) {
	var last protocol.NATReport
	var lastRelay netip.AddrPort
	var lastAt time.Time
	for {
		var w natWake
		select {
		case <-ctx.Done():
			return
		case w = <-a.natWake:
		}
		if w.relay == lastRelay && w.public == last.Public && time.Since(lastAt) < natRecheckAfter {
			continue
		}
		rep, err := a.checkNAT(ctx, w.relay)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.log.Info("NAT discovery incomplete", "relay", w.relay, "err", err)
			continue
		}
		changed := rep.Classic() != last.Classic() || rep.Mapping != last.Mapping || rep.Filtering != last.Filtering ||
			rep.PortsString() != last.PortsString() || rep.Hairpin != last.Hairpin || rep.Public != last.Public
		last, lastRelay, lastAt = rep, w.relay, time.Now()
		a.state.setNAT(rep)
		if changed {
			a.log.Info("NAT discovered", "type", rep.Classic(), "public", rep.Public, "mapping", rep.Mapping,
				"filtering", rep.Filtering, "ports", rep.PortsString(), "hairpin", rep.Hairpin)
		}
	}
}

// natWake asks natLoop to measure against relay; public is the agent's
// public address as that relay last saw it.
type natWake struct {
	relay, public netip.AddrPort
}

// wakeNAT asks for a measurement, replacing one not yet taken.
func (a *Agent) wakeNAT(relay, public netip.AddrPort) {
	for {
		select {
		case a.natWake <- natWake{relay, public}:
			return
		default:
		}
		select {
		case <-a.natWake:
		default:
		}
	}
}

// checkNAT runs one measurement on the agent's socket.
func (a *Agent) checkNAT(ctx context.Context, relay netip.AddrPort) (protocol.NATReport, error) {
	cfg := a.cfg.Load()
	local := localToward(a.sock.LocalAddr(), relay, cfg.ListenPacket == nil)
	chk := netcheck.New(netcheck.Config{Relay: relay, Local: local, Send: a.sock.Send,
		Listen: func() (net.PacketConn, error) {
			addr := netip.AddrPortFrom(local.Addr(), 0).String()
			if cfg.ListenPacket != nil {
				return cfg.ListenPacket("udp4", addr)
			}
			return net.ListenPacket("udp4", addr)
		}})
	a.sock.SetSTUN(chk.Deliver)
	defer a.sock.SetSTUN(nil)
	return chk.Check(ctx)
}

// localToward returns the socket's address with the IP the kernel uses
// toward relay when the socket is bound to the wildcard: without it, an
// agent with a public IP of its own could not tell that there is no NAT.
// Connecting a UDP socket sends nothing.
func localToward(sock, relay netip.AddrPort, real bool) netip.AddrPort {
	if !real || !sock.Addr().IsUnspecified() {
		return sock
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(relay))
	if err != nil {
		return sock
	}
	defer c.Close()
	return netip.AddrPortFrom(c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), sock.Port())
}
