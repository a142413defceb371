package agent

import (
	"sort"
	"time"
)

// PeerReport is one peer session as `pinhole status` shows it.
type PeerReport struct {
	Name string `json:"name"`
	// Path is direct, relay or connecting (no session yet: Status says why).
	Path      string `json:"path"`
	Status    string `json:"status,omitempty"`
	Initiator bool   `json:"initiator"`
	// Direct is the validated direct address and FoundAs how it was
	// found (reflexive, lan, mapped, predicted, learned).
	Direct    string  `json:"direct_addr,omitempty"`
	FoundAs   string  `json:"found_as,omitempty"`
	Strategy  string  `json:"strategy,omitempty"`
	RTTMillis float64 `json:"rtt_ms,omitempty"`
	BytesIn   uint64  `json:"bytes_in"`
	BytesOut  uint64  `json:"bytes_out"`
	// DatagramsDirect and DatagramsRelayed count what arrived each way.
	DatagramsDirect  uint64 `json:"datagrams_direct"`
	DatagramsRelayed uint64 `json:"datagrams_relayed"`
	PathSwitches     int    `json:"path_switches"`
	// TimeToDirectMillis is from the session's start to its first direct path.
	TimeToDirectMillis float64    `json:"time_to_direct_ms,omitempty"`
	LastAttempt        *time.Time `json:"last_punch,omitempty"`
	LastFailure        string     `json:"last_punch_failure,omitempty"`
}

// report lists the peer sessions and the wanted peers without one.
func (m *peerManager) report() []PeerReport {
	seen := map[*peerSession]bool{}
	var out []PeerReport
	m.mu.Lock()
	var all []*peerSession
	for _, s := range m.byPair {
		all = append(all, s)
	}
	var idle []*peerWant
	for _, w := range m.wants {
		if s := w.current(); s != nil {
			all = append(all, s)
		} else {
			idle = append(idle, w)
		}
	}
	m.mu.Unlock()
	for _, s := range all {
		if seen[s] {
			continue
		}
		seen[s] = true
		if r, ok := s.report(); ok {
			out = append(out, r)
		}
	}
	for _, w := range idle {
		out = append(out, PeerReport{Name: w.name, Path: "connecting", Status: w.statusText(), Initiator: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// report describes an established session (ok false before the handshake).
func (s *peerSession) report() (PeerReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc == nil || s.closed {
		return PeerReport{}, false
	}
	r := PeerReport{Name: s.name, Path: "relay", Initiator: s.initiator, Strategy: s.path.strategy,
		BytesIn: s.pc.BytesIn.Load(), BytesOut: s.pc.BytesOut.Load(),
		DatagramsDirect: s.pc.Direct.Load(), DatagramsRelayed: s.pc.Relayed.Load(),
		PathSwitches: s.path.switches, LastFailure: s.path.lastFail,
		RTTMillis: float64(s.lk.SRTT().Microseconds()) / 1000}
	if s.path.direct.IsValid() {
		r.Direct, r.FoundAs = shownAddr(s.path.direct), s.path.how
		r.TimeToDirectMillis = float64(s.path.firstWait.Microseconds()) / 1000
		if !s.pc.UsingRelay() {
			r.Path = "direct"
		}
	}
	if !s.path.lastTry.IsZero() {
		at := s.path.lastTry
		r.LastAttempt = &at
	}
	return r, true
}
