package netcheck

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/netsim"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
	"github.com/pinhole/pinhole/relay"
)

var (
	relayIP  = netip.MustParseAddr("203.0.113.1")
	relayIP2 = netip.MustParseAddr("203.0.113.2")
	natIP    = netip.MustParseAddr("198.51.100.10")
	openIP   = netip.MustParseAddr("198.51.100.20")
	lanIP    = netip.MustParseAddr("192.168.1.2")
)

// simRelay runs a real relay on two simulated public hosts (its primary
// and alternate IPs), as RFC 5780 discovery needs.
func simRelay(t *testing.T, inet *netsim.Network) netip.AddrPort {
	t.Helper()
	h1, err := inet.AddHost(relayIP)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := inet.AddHost(relayIP2)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := secure.GeneratePrivateKey()
	cfg := &relay.Config{Listen: netip.AddrPortFrom(relayIP, 3478).String(), AltListen: netip.AddrPortFrom(relayIP2, 3479).String(),
		PrivateKey: key, Tuning: link.DefaultTuning()}
	cfg.ListenPacket = func(network, address string) (net.PacketConn, error) {
		if ap, err := netip.ParseAddrPort(address); err == nil && ap.Addr() == relayIP2 {
			return h2.ListenPacket(network, address)
		}
		return h1.ListenPacket(network, address)
	}
	cfg.ListenTCP = func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }
	r, err := relay.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r.Addr()
}

// checkOn runs a check from host: a main socket whose reader feeds the
// Checker, as the agent's demux does, and probes on the same host.
func checkOn(t *testing.T, host *netsim.Host, relayAddr netip.AddrPort) protocol.NATReport {
	t.Helper()
	main, err := host.ListenPacket("udp4", netip.AddrPortFrom(host.Addr(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	local := main.LocalAddr().(*net.UDPAddr).AddrPort()
	c := New(Config{Relay: relayAddr, Local: local,
		Send: func(b []byte, to netip.AddrPort) error {
			_, err := main.WriteTo(b, net.UDPAddrFromAddrPort(to))
			return err
		},
		Listen: func() (net.PacketConn, error) {
			return host.ListenPacket("udp4", netip.AddrPortFrom(host.Addr(), 0).String())
		}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Feed(main)
	}()
	defer func() { main.Close(); <-done }()
	start := time.Now()
	r, err := c.Check(context.Background())
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	t.Logf("check took %v", time.Since(start).Round(time.Millisecond))
	return r
}

// TestCheckBehindEveryNAT classifies each netsim preset and compares with
// what the preset is.
func TestCheckBehindEveryNAT(t *testing.T) {
	cases := []struct {
		nat     netsim.NATType
		hairpin bool
		mapping protocol.Mapping
		filter  protocol.Filtering
		ports   string
		classic string
		hp      protocol.Tristate
	}{
		{netsim.None, false, protocol.MappingEndpointIndependent, protocol.FilteringEndpointIndependent, "preserved", "none", protocol.Yes},
		{netsim.FullCone, false, protocol.MappingEndpointIndependent, protocol.FilteringEndpointIndependent, "preserved", "full cone", protocol.No},
		{netsim.FullCone, true, protocol.MappingEndpointIndependent, protocol.FilteringEndpointIndependent, "preserved", "full cone", protocol.Yes},
		{netsim.RestrictedCone, false, protocol.MappingEndpointIndependent, protocol.FilteringAddressDependent, "preserved", "restricted cone", protocol.No},
		{netsim.PortRestricted, true, protocol.MappingEndpointIndependent, protocol.FilteringAddressPortDependent, "preserved", "port-restricted cone", protocol.Yes},
		{netsim.Symmetric, false, protocol.MappingAddressPortDependent, protocol.FilteringAddressPortDependent, "random", "symmetric", protocol.No},
		{netsim.SymmetricSeq, false, protocol.MappingAddressPortDependent, protocol.FilteringAddressPortDependent, "sequential (delta +1)", "symmetric", protocol.No},
	}
	for _, c := range cases {
		name := c.nat.String()
		if c.hairpin {
			name += "+hairpin"
		}
		t.Run(name, func(t *testing.T) {
			inet := netsim.New(netsim.Options{})
			defer inet.Close()
			relayAddr := simRelay(t, inet)
			var host *netsim.Host
			var err error
			if cfg, ok := c.nat.Config(); ok {
				cfg.Hairpin = c.hairpin
				nat, err := inet.AddNAT(natIP, cfg)
				if err != nil {
					t.Fatal(err)
				}
				host, err = nat.Inside().AddHost(lanIP)
			} else {
				host, err = inet.AddHost(openIP)
			}
			if err != nil {
				t.Fatal(err)
			}
			r := checkOn(t, host, relayAddr)
			if r.UDP != protocol.Yes || !r.Public.IsValid() {
				t.Fatalf("udp %v, public %v", r.UDP, r.Public)
			}
			if c.nat == netsim.None != r.NoNAT() {
				t.Errorf("no NAT: got %v (local %v, public %v)", r.NoNAT(), r.Local, r.Public)
			}
			if r.Mapping != c.mapping || r.Filtering != c.filter || r.PortsString() != c.ports || r.Classic() != c.classic || r.Hairpin != c.hp {
				t.Errorf("got mapping %v, filtering %v, ports %q, type %q, hairpin %v;\nwant %v, %v, %q, %q, %v",
					r.Mapping, r.Filtering, r.PortsString(), r.Classic(), r.Hairpin, c.mapping, c.filter, c.ports, c.classic, c.hp)
			}
		})
	}
}
