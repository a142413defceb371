package netsim

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// The lab's addresses (lab/README.md), so cases read the same in both.
var (
	respIP  = netip.MustParseAddr("203.0.113.10") // RFC 5780 responder, first address
	respIP2 = netip.MustParseAddr("203.0.113.11") // its second address
	natIP   = netip.MustParseAddr("203.0.113.101")
	cgnIP   = netip.MustParseAddr("203.0.113.111")
	openIPs = []netip.Addr{netip.MustParseAddr("203.0.113.121"), netip.MustParseAddr("203.0.113.122")}
	lanIPs  = []netip.Addr{netip.MustParseAddr("10.0.1.2"), netip.MustParseAddr("10.0.1.3")}
	cgnLAN  = netip.MustParseAddr("100.64.1.2") // the home NAT's address on the carrier's network (RFC 6598)
)

// site is one lab site in memory: a NAT of a preset (none for None) with
// two LAN hosts, and the responder's two addresses on the internet.
type site struct {
	inet        *Network
	nat         *NAT // nil for None
	a1, a2      *Host
	resp, resp2 *Host
}

func newSite(t testing.TB, typ NATType, tweak func(*NATConfig)) *site {
	t.Helper()
	inet := New(Options{QueueLen: 4096})
	t.Cleanup(func() { inet.Close() })
	s := &site{inet: inet, resp: mustHost(t, inet, respIP), resp2: mustHost(t, inet, respIP2)}
	cfg, ok := typ.Config()
	if !ok {
		s.a1, s.a2 = mustHost(t, inet, openIPs[0]), mustHost(t, inet, openIPs[1])
		return s
	}
	if tweak != nil {
		tweak(&cfg)
	}
	nat, err := inet.AddNAT(natIP, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.nat = nat
	s.a1, s.a2 = mustHost(t, nat.Inside(), lanIPs[0]), mustHost(t, nat.Inside(), lanIPs[1])
	return s
}

func mustHost(t testing.TB, n *Network, ip netip.Addr) *Host {
	t.Helper()
	h, err := n.AddHost(ip)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// listen opens a socket on h (port 0: ephemeral), closed with the test.
func listen(t testing.TB, h *Host, port uint16) net.PacketConn {
	t.Helper()
	pc, err := h.ListenPacket("udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), port).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func addrOf(pc net.PacketConn) netip.AddrPort { return pc.LocalAddr().(*net.UDPAddr).AddrPort() }

func send(t testing.TB, pc net.PacketConn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := pc.WriteTo([]byte(msg), net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatalf("send to %v: %v", to, err)
	}
}

// recv waits up to wait for one datagram; ok is false on timeout.
func recv(t testing.TB, pc net.PacketConn, wait time.Duration) (from netip.AddrPort, msg string, ok bool) {
	t.Helper()
	pc.SetReadDeadline(time.Now().Add(wait))
	defer pc.SetReadDeadline(time.Time{})
	b := make([]byte, 2048)
	n, addr, err := pc.ReadFrom(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return netip.AddrPort{}, "", false
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return addr.(*net.UDPAddr).AddrPort(), string(b[:n]), true
}

// Without delay, delivery is synchronous: a packet that is not queued when
// WriteTo returns never arrives. This wait only covers scheduling.
const noArrival = 20 * time.Millisecond

// observe sends from pc to the responder socket r and returns the source
// address r sees: pc's public mapping toward r (RFC 5780's XOR-MAPPED-ADDRESS).
func observe(t testing.TB, pc, r net.PacketConn) netip.AddrPort {
	t.Helper()
	send(t, pc, addrOf(r), "probe")
	from, _, ok := recv(t, r, time.Second)
	if !ok {
		t.Fatalf("probe from %v to %v never arrived", addrOf(pc), addrOf(r))
	}
	return from
}

// arrives reports whether a packet from r to the public address pub gets
// through to pc.
func arrives(t testing.TB, r net.PacketConn, pub netip.AddrPort, pc net.PacketConn) bool {
	t.Helper()
	send(t, r, pub, "unsolicited")
	from, _, ok := recv(t, pc, noArrival)
	if ok && from != addrOf(r) {
		t.Fatalf("packet from %v arrived from %v", addrOf(r), from)
	}
	return ok
}

// echo answers every datagram on pc to its sender until pc closes.
func echo(pc net.PacketConn) {
	b := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(b)
		if err != nil {
			return
		}
		pc.WriteTo(b[:n], from)
	}
}
