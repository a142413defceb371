package relay

import (
	"net/netip"
	"sync"
)

// agentsAt counts the agents at each source IP: those live now, and those
// the state file of the last run remembered there. Many routers behind one
// carrier-grade NAT share its address; the per-address budget for proven
// handshakes grows with their number (ratelimit.go), so after a restart
// they all come back at once, while an address with no agents gets only
// the base budget and cannot crowd the handshake workers. The zero value
// is ready; mu guards the maps.
type agentsAt struct {
	mu         sync.Mutex
	live       map[netip.Addr]int
	remembered map[netip.Addr]int // from the state file; never grows after start
}

// count is the larger of the agents live at ip and those remembered there.
func (a *agentsAt) count(ip netip.Addr) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return max(a.live[ip], a.remembered[ip])
}

// add counts one more live agent at ip (a session became live).
func (a *agentsAt) add(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.live == nil {
		a.live = map[netip.Addr]int{}
	}
	a.live[ip]++
}

// remove counts one live agent less at ip (a live session ended or was
// replaced).
func (a *agentsAt) remove(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.live[ip] <= 1 {
		delete(a.live, ip)
		return
	}
	a.live[ip]--
}

// remember records where the last run's agents were.
func (a *agentsAt) remember(entries []stateEntry) {
	m := map[netip.Addr]int{}
	for _, e := range entries {
		m[e.addr.Addr().Unmap()]++
	}
	a.mu.Lock()
	a.remembered = m
	a.mu.Unlock()
}
