package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pinhole/pinhole/agent/internal/netcheck"
	"github.com/pinhole/pinhole/agent/internal/relaylink"
	"github.com/pinhole/pinhole/protocol"
)

// NATResult is what `pinhole nat` reports.
type NATResult struct {
	protocol.NATReport
	Relay netip.AddrPort
	// TCP says whether the relay's TCP port answers; checked only when
	// UDP does not (the tunnel's fallback).
	TCP protocol.Tristate
	// PortMapping is the "port mapping" line: "pcp 198.51.100.10:41000"
	// (or upnp-igd, nat-pmp) or "none"; CheckPortMapping finds it.
	PortMapping string
}

// CheckNAT measures the NAT between this host and the relay at address
// (host:port) with a socket of its own, as `pinhole nat` does. It returns
// an error only when the relay cannot be resolved or the socket opened;
// "no UDP" is a result (UDP = No, with TCP checked).
func CheckNAT(ctx context.Context, address string) (NATResult, error) {
	ap, err := relaylink.Resolve(ctx, nil, address)
	if err != nil {
		return NATResult{}, err
	}
	network := "udp4"
	if ap.Addr().Is6() {
		network = "udp6"
	}
	main, err := net.ListenUDP(network, nil)
	if err != nil {
		return NATResult{}, fmt.Errorf("open udp socket: %w", err)
	}
	defer main.Close()
	local := localToward(main.LocalAddr().(*net.UDPAddr).AddrPort(), ap, true)
	chk := netcheck.New(netcheck.Config{Relay: ap, Local: local,
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := main.WriteToUDPAddrPort(b, to)
			return err
		},
		Listen: func() (net.PacketConn, error) {
			return net.ListenUDP(network, &net.UDPAddr{IP: local.Addr().AsSlice()})
		}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		chk.Feed(main)
	}()
	rep, err := chk.Check(ctx)
	main.Close()
	<-done
	res := NATResult{NATReport: rep, Relay: ap}
	if rep.UDP != protocol.Yes {
		res.TCP = protocol.No
		d := net.Dialer{Timeout: 2 * time.Second}
		if c, err := d.DialContext(ctx, "tcp", ap.String()); err == nil {
			c.Close()
			res.TCP = protocol.Yes
		}
		return res, nil
	}
	return res, err
}

// MeasureLifetime measures how long the NAT between this host and the
// relay at address keeps an idle UDP mapping, as `pinhole nat --lifetime`
// does: a lower bound, from probes on fresh sockets (package netcheck;
// minutes with the zero schedule, the real one).
func MeasureLifetime(ctx context.Context, address string, s LifetimeSchedule) (time.Duration, error) {
	ap, err := relaylink.Resolve(ctx, nil, address)
	if err != nil {
		return 0, err
	}
	network := "udp4"
	if ap.Addr().Is6() {
		network = "udp6"
	}
	chk := netcheck.New(netcheck.Config{Relay: ap, Listen: func() (net.PacketConn, error) { return net.ListenPacket(network, "") }})
	return chk.Lifetime(ctx, s)
}

// Lifetime measurement outcomes callers tell apart.
var (
	ErrShortLifetime = netcheck.ErrShortLifetime
	ErrNoDelay       = netcheck.ErrNoDelay
)
