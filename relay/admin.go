package relay

import (
	"context"
	"net"
	"sort"
	"time"

	"github.com/pinhole/pinhole/internal/admin"
)

func listenAdmin(addr string) (net.Listener, error) { return admin.Listen(addr, false) }

func (r *Relay) serveAdmin(ctx context.Context) {
	admin.Serve(ctx, r.admin, func() admin.Document { return r.Status() })
}

// Status is the relay's state as `pinhole status` shows it.
type Status struct {
	Role    string            `json:"role"`
	Addr    string            `json:"addr"`
	Agents  []AgentStatus     `json:"agents"`
	Counter map[string]uint64 `json:"counters"`
	Process admin.Process     `json:"process"`
}

// AgentStatus describes one connected agent.
type AgentStatus struct {
	Name      string    `json:"name"`
	Transport string    `json:"transport"`
	Addr      string    `json:"addr"`
	Since     time.Time `json:"connected_since"`
	Software  string    `json:"software,omitempty"`
	Streams   int       `json:"streams"`
	// Link is "parked" (no smux session, no data conversation) or
	// "awake" for a link in the parked layout, empty for the smux one.
	Link      string           `json:"link,omitempty"`
	Exposures []ExposureStatus `json:"exposures"`
}

// ExposureStatus describes one open public port.
type ExposureStatus struct {
	Name  string `json:"name"`
	Proto string `json:"proto"`
	Port  uint16 `json:"port"`
	Flows int    `json:"udp_flows,omitempty"` // client flows of a UDP exposure now
}

// Status returns a snapshot of the relay.
func (r *Relay) Status() Status {
	st := Status{Role: "relay", Addr: r.udpAddr.String(), Agents: []AgentStatus{}, Counter: map[string]uint64{
		"handshakes":             r.stats.Handshakes.Load(),
		"handshake_failed":       r.stats.HandshakeFailed.Load(),
		"unknown_agent":          r.stats.UnknownAgent.Load(),
		"replayed":               r.stats.Replayed.Load(),
		"malformed":              r.stats.Malformed.Load(),
		"unknown_session":        r.stats.UnknownSession.Load(),
		"tcp_rejected":           r.stats.TCPRejected.Load(),
		"replaced":               r.stats.Replaced.Load(),
		"memory_reclaims":        r.reclaim.count.Load(),
		"pending_discarded":      r.stats.PendingDiscarded.Load(),
		"handshake_dropped":      r.stats.HandshakeDropped.Load(),
		"handshake_coalesced":    r.stats.HandshakeCoalesced.Load(),
		"handshake_resent":       r.stats.HandshakeResent.Load(),
		"handshake_junk":         r.stats.HandshakeJunk.Load(),
		"cookies_sent":           r.stats.CookiesSent.Load(),
		"stun_requests":          r.stun.requests.Load(),
		"stun_dropped":           r.stun.dropped.Load(),
		"stun_delayed":           r.stun.delayed.accepted.Load(),
		"stun_delayed_refused":   r.stun.delayed.refused.Load(),
		"duplicate_key":          r.stats.DuplicateKey.Load(),
		"exposures_refused":      r.stats.ExposuresRefused.Load(),
		"streams_reset_sent":     r.stats.Tunnels.ResetSent.Load(),
		"streams_reset_received": r.stats.Tunnels.ResetReceived.Load(),
		"streams_stalled_reset":  r.stats.Tunnels.StalledReset.Load(),
		"udp_flows_evicted":      r.stats.FlowsEvicted.Load(),
		"udp_datagrams_dropped":  r.stats.DatagramsDropped.Load(),
		"peer_intros":            r.stats.Peers.Intros.Load(),
		"peer_refused":           r.stats.Peers.Refused.Load(),
		"peer_forwarded":         r.stats.Peers.Forwarded.Load(),
		"peer_forwarded_bytes":   r.stats.Peers.ForwardedBytes.Load(),
		"peer_forward_dropped":   r.stats.Peers.ForwardDropped.Load(),
	}, Process: admin.ProcessStats()}
	for _, s := range r.liveSessions() {
		if s.pc != nil {
			ch, mv := s.pc.PathStats()
			st.Counter["path_challenges"] += ch
			st.Counter["path_moves"] += mv
		}
		as := AgentStatus{Name: s.entry.Load().Name, Transport: string(s.transport), Addr: s.addr.String(),
			Since: s.started, Streams: s.link.NumStreams(), Exposures: []ExposureStatus{}}
		if s.pc != nil {
			as.Addr = s.pc.Peer().String()
		}
		if s.link.Parking() {
			as.Link = "awake"
			if s.link.Parked() {
				as.Link = "parked"
				st.Counter["links_parked"]++
			}
			parks, wakes, _ := s.link.ParkStats()
			st.Counter["link_parks"] += parks
			st.Counter["link_wakes"] += wakes
		}
		if h := s.hello.Load(); h != nil {
			as.Software = h.Software
		}
		s.expMu.Lock()
		for _, e := range s.exposures {
			as.Exposures = append(as.Exposures, ExposureStatus{Name: e.name, Proto: e.proto.String(), Port: e.port, Flows: e.flowCount()})
		}
		s.expMu.Unlock()
		sort.Slice(as.Exposures, func(i, j int) bool { return as.Exposures[i].Name < as.Exposures[j].Name })
		st.Agents = append(st.Agents, as)
	}
	sort.Slice(st.Agents, func(i, j int) bool { return st.Agents[i].Name < st.Agents[j].Name })
	return st
}

// Counters returns the relay's counters (as in Status).
func (r *Relay) Counters() map[string]uint64 { return r.Status().Counter }
