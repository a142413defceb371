package agent

import (
	"context"
	"errors"
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
// for status (and, later, hole punching). With heartbeat auto it then
// measures the mapping lifetime of that network (relay and public
// address) and tunes the heartbeat to it; a new network, or a link that
// died by silence (w.force), measures again. A wake during a lifetime
// measurement (minutes long) stops it and starts over.
func (a *Agent) natLoop(ctx context.Context) {
	var last protocol.NATReport
	var lastRelay netip.AddrPort
	var lastAt time.Time
	measured := false // the lifetime of last's network is known
	var next *natWake // a wake that arrived during a lifetime measurement
	for {
		var w natWake
		if next != nil {
			w, next = *next, nil
		} else {
			select {
			case <-ctx.Done():
				return
			case w = <-a.natWake:
			}
		}
		auto := a.cfg.Load().heartbeatAuto()
		same := w.relay == lastRelay && w.public == last.Public
		if same && !w.force && time.Since(lastAt) < natRecheckAfter && (measured || !auto) {
			continue
		}
		if !same || w.force {
			measured = false
			a.unmeasured()
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
		if same && measured {
			rep.Lifetime = last.Lifetime
		}
		last, lastRelay, lastAt = rep, w.relay, time.Now()
		a.state.setNAT(rep)
		if changed {
			a.peers.natChanged()
		}
		if changed {
			a.log.Info("NAT discovered", "type", rep.Classic(), "public", rep.Public, "mapping", rep.Mapping,
				"filtering", rep.Filtering, "ports", rep.PortsString(), "hairpin", rep.Hairpin)
		}
		if !auto || measured {
			continue
		}
		l, interrupted, err := a.measureLifetime(ctx, w.relay)
		if ctx.Err() != nil {
			return
		}
		if interrupted != nil {
			next = interrupted
			continue
		}
		switch {
		case errors.Is(err, netcheck.ErrShortLifetime):
			l = shortLifetime
		case err != nil:
			// A relay without delayed answers will not grow them before
			// the network changes: do not ask again at every reconnect.
			measured = errors.Is(err, netcheck.ErrNoDelay)
			a.log.Info("NAT mapping lifetime not measured; keeping the default heartbeat", "relay", w.relay, "err", err)
			continue
		}
		measured = true
		last.Lifetime = max(l, 0)
		a.state.setNAT(last)
		a.log.Info("NAT mapping lifetime measured", "lifetime", max(l, 0), "short", l < 0)
		a.setLifetime(l)
	}
}

// measureLifetime runs netcheck's lifetime measurement toward relay on
// fresh sockets (the agent's socket is not involved: its heartbeats
// would refresh the mappings). A wake meanwhile stops it and is returned.
func (a *Agent) measureLifetime(ctx context.Context, relay netip.AddrPort) (time.Duration, *natWake, error) {
	cfg := a.cfg.Load()
	local := localToward(a.sock.LocalAddr(), relay, cfg.ListenPacket == nil)
	chk := netcheck.New(netcheck.Config{Relay: relay, Local: local, Listen: a.probeListener(cfg, local)})
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		l   time.Duration
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := chk.Lifetime(mctx, cfg.Lifetime)
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.l, nil, r.err
	case w := <-a.natWake:
		cancel()
		<-done
		return 0, &w, nil
	}
}

// probeListener opens netcheck's fresh probe sockets on the agent's IP.
func (a *Agent) probeListener(cfg *Config, local netip.AddrPort) func() (net.PacketConn, error) {
	return func() (net.PacketConn, error) {
		addr := netip.AddrPortFrom(local.Addr(), 0).String()
		if cfg.ListenPacket != nil {
			return cfg.ListenPacket("udp4", addr)
		}
		return net.ListenPacket("udp4", addr)
	}
}

// natWake asks natLoop to measure against relay; public is the agent's
// public address as that relay last saw it; force measures again even
// the same network (its link died by silence).
type natWake struct {
	relay, public netip.AddrPort
	force         bool
}

// wakeNAT asks for a measurement, replacing one not yet taken.
func (a *Agent) wakeNAT(relay, public netip.AddrPort) {
	a.wake(natWake{relay: relay, public: public, force: a.silentDeath.Swap(false)})
}

// wake hands w to natLoop, replacing one not yet taken.
func (a *Agent) wake(w natWake) {
	for {
		select {
		case a.natWake <- w:
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
	chk := netcheck.New(netcheck.Config{Relay: relay, Local: local, Send: a.sock.Send, Listen: a.probeListener(cfg, local)})
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
