package relay

import (
	"net/netip"
	"testing"
	"time"
)

// allowedProven counts the proven handshakes from ports distinct ports of
// ip, agents known there, that the limiter lets through at now.
func allowedProven(l *sourceLimiter, ip string, ports, agents int, now time.Time) int {
	n := 0
	for p := range ports {
		if l.allowProven(netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(10000+p)), agents, now) {
			n++
		}
	}
	return n
}

// TestProvenBudgetPerIPScalesWithAgents: an address with no agents that
// proves a thousand ports (it receives cookies there) gets the base
// per-IP budget, not a thousand ports' worth, so it cannot fill the
// workers' queue; an address where a thousand agents were last seen gets
// them all through at once, and its budget keeps pace afterwards.
func TestProvenBudgetPerIPScalesWithAgents(t *testing.T) {
	var l sourceLimiter
	now := time.Now()
	if got := allowedProven(&l, "192.0.2.1", 1000, 0, now); got != int(provenIPBurst) {
		t.Fatalf("an address with no agents, 1,000 proven ports: %d handshakes let through, want the base burst %d", got, int(provenIPBurst))
	}
	if got := allowedProven(&l, "192.0.2.1", 1000, 0, now.Add(time.Second)); got != int(provenIPRate) {
		t.Fatalf("a second later: %d let through, want the base rate %d", got, int(provenIPRate))
	}
	if got := allowedProven(&l, "198.51.100.1", 1000, 1000, now); got != 1000 {
		t.Fatalf("an address with 1,000 agents: %d of its 1,000 handshakes let through, want all", got)
	}
	// Each port still has its own small budget.
	ap := netip.MustParseAddrPort("198.51.100.2:4000")
	n := 0
	for range 100 {
		if l.allowProven(ap, 1000, now) {
			n++
		}
	}
	if n != int(provenBurst) {
		t.Fatalf("one address and port: %d of 100 let through, want its burst %d", n, int(provenBurst))
	}
}

// TestAgentsAtCountsLiveAndRemembered: the count at an IP is the larger of
// the agents live there and those the last run's state file put there.
func TestAgentsAtCountsLiveAndRemembered(t *testing.T) {
	var a agentsAt
	ip := netip.MustParseAddr("192.0.2.7")
	var entries []stateEntry
	for p := range 5 {
		entries = append(entries, stateEntry{addr: netip.AddrPortFrom(ip, uint16(1000+p)), index: uint32(p + 1)})
	}
	entries = append(entries, stateEntry{addr: netip.MustParseAddrPort("[::ffff:192.0.2.7]:2000"), index: 9})
	a.remember(entries)
	if got := a.count(ip); got != 6 {
		t.Fatalf("remembered: %d, want 6 (an IPv4-mapped address is the same IP)", got)
	}
	for range 8 {
		a.add(ip)
	}
	if got := a.count(ip); got != 8 {
		t.Fatalf("8 live, 6 remembered: %d, want 8", got)
	}
	for range 8 {
		a.remove(ip)
	}
	if got, live := a.count(ip), len(a.live); got != 6 || live != 0 {
		t.Fatalf("all gone: count %d (want the 6 remembered), live map holds %d IPs (want none)", got, live)
	}
}
