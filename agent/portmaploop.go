package agent

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/pinhole/pinhole/agent/internal/portmap"
)

// Port-mapping timer policy (beside the loop it drives; the link's timers
// are in timers.go).
const (
	// portmapAttempt bounds one request or renewal, discovery included
	// (PCP/NAT-PMP 1.75 s, SSDP 2 s, three HTTP exchanges on the LAN).
	portmapAttempt = 15 * time.Second
	// A gateway without port mapping is asked again after
	// portmapRetryMin, doubling to portmapRetryMax: routers rarely gain
	// it, but a router that booted after the agent answers soon.
	portmapRetryMin = 30 * time.Second
	portmapRetryMax = 30 * time.Minute
	// portmapDelete bounds the delete at shutdown (procd allows a few
	// seconds before SIGKILL; an undeleted mapping expires by itself).
	portmapDelete = 2 * time.Second
)

// PortMapping is a port the LAN's gateway forwards to the agent's UDP
// socket (UPnP IGD, NAT-PMP or PCP).
type PortMapping struct {
	Protocol string         // "upnp-igd", "nat-pmp" or "pcp"
	Address  netip.AddrPort // public address and port
	Lifetime time.Duration  // granted lease (0: permanent)
}

// MappedAddr returns the public address the gateway forwards to the
// agent's UDP socket, or the zero AddrPort when there is none (off, no
// gateway offers it, or not yet granted). A candidate for peers.
func (a *Agent) MappedAddr() netip.AddrPort {
	if m := a.portmap.Load(); m != nil {
		return m.Address
	}
	return netip.AddrPort{}
}

// portmapLoop is the port-mapping sibling: with port_mapping auto it asks
// the gateway to forward a public port to the agent's UDP socket, renews
// at half the granted lifetime (RFC 6886 §3.3, RFC 6887 §11.2.1), asks
// anew when a renewal fails or the gateway lost its state (package
// portmap), and deletes the mapping when ctx ends (a clean shutdown).
func (a *Agent) portmapLoop(ctx context.Context) {
	if !a.cfg.Load().PortMapping {
		return
	}
	c := portmap.New(portmapConfig(a.sock.LocalAddr().Port()))
	defer func() {
		a.portmap.Store(nil)
		if c.Current().Proto == portmap.None {
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), portmapDelete)
		defer cancel()
		if err := c.Unmap(dctx); err != nil {
			a.log.Info("port mapping not deleted; it expires by itself", "err", err)
		} else {
			a.log.Info("port mapping deleted")
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	var step time.Duration // failure backoff
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		prev := c.Current()
		mctx, cancel := context.WithTimeout(ctx, portmapAttempt)
		m, err := c.Map(mctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.portmap.Store(nil)
			if prev.Proto != portmap.None || err.Error() != lastErr {
				a.log.Info("no port mapping", "err", err)
			}
			lastErr = err.Error()
			step = min(portmapRetryMax, max(portmapRetryMin, 2*step))
			t.Reset(jitter(step))
			continue
		}
		step, lastErr = 0, ""
		if m.External != prev.External || m.Proto != prev.Proto || m.Restarted {
			a.log.Info("port mapped", "proto", m.Proto, "addr", m.External, "lifetime", m.Lifetime, "gateway_restarted", m.Restarted)
		}
		a.portmap.Store(&PortMapping{Protocol: m.Proto.String(), Address: m.External, Lifetime: m.Lifetime})
		if m.External != prev.External {
			a.peers.natChanged() // peers get the mapped address as a candidate
		}
		life := m.Lifetime
		if life <= 0 {
			life = portmap.DefaultLifetime // a permanent lease: check it as often
		}
		t.Reset(jitter(life / 2))
	}
}

// portmapConfig is the mapping asked for the agent's socket port: the
// default gateway, the standard ports. Tests point it at a fake gateway.
var portmapConfig = func(port uint16) portmap.Config { return portmap.Config{Port: port} }

// CheckPortMapping asks the LAN's gateway for a mapping of a fresh UDP
// socket and deletes it at once, as `pinhole nat` does. An error says why
// there is none (no gateway, no answer, a refusal).
func CheckPortMapping(ctx context.Context) (PortMapping, error) {
	u, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return PortMapping{}, err
	}
	defer u.Close()
	// A short lease: if the delete is lost, the mapping goes soon
	// (miniupnpd's default minimum is 120 s).
	c := portmap.New(portmap.Config{Port: u.LocalAddr().(*net.UDPAddr).AddrPort().Port(), Lifetime: 2 * time.Minute})
	m, err := c.Map(ctx)
	if err != nil {
		return PortMapping{}, err
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), portmapDelete)
	defer cancel()
	c.Unmap(dctx)
	return PortMapping{Protocol: m.Proto.String(), Address: m.External, Lifetime: m.Lifetime}, nil
}
