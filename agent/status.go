package agent

import (
	"net/netip"
	"sync"
	"time"

	"github.com/pinhole/pinhole/agent/internal/relaylink"
	"github.com/pinhole/pinhole/internal/admin"
	"github.com/pinhole/pinhole/protocol"
)

// state is what `pinhole status` shows; mu guards every field.
type state struct {
	mu        sync.Mutex
	relay     string
	transport string
	addr      netip.AddrPort
	observed  netip.AddrPort
	clock     time.Duration // relay clock minus ours, from the last handshake
	nat       protocol.NATReport
	natAt     time.Time
	lifetime  time.Duration // measured mapping lifetime (0: none; shortLifetime)
	since     time.Time
	rtt       time.Duration
	lastPong  time.Time
	pongs     uint64 // heartbeat answers received, ever
	lastErr   string
	last      protocol.Notice
	exposures []protocol.ExposureStatus
	retryAt   time.Time // when refused exposures are registered again (zero: no retry)
	up        bool
}

func (s *state) connected(c *relaylink.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.relay, s.transport, s.addr, s.observed, s.clock = c.Target.Address, string(c.Transport), c.Addr, c.Observed, c.ClockOffset
	s.since, s.up, s.lastErr, s.last = time.Now(), true, "", protocol.Notice{}
}

func (s *state) disconnected() {
	s.mu.Lock()
	s.up = false
	s.mu.Unlock()
}

func (s *state) setError(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// pong records a Pong and reports whether it showed a new public address.
func (s *state) pong(rtt time.Duration, observed netip.AddrPort) (moved bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtt, s.lastPong = rtt, time.Now()
	s.pongs++
	if observed.IsValid() && observed != s.observed {
		moved = s.observed.IsValid()
		s.observed = observed
	}
	return moved
}

// setNAT records the last NAT measurement.
func (s *state) setNAT(r protocol.NATReport) {
	s.mu.Lock()
	s.nat, s.natAt = r, time.Now()
	s.mu.Unlock()
}

func (s *state) setLifetime(l time.Duration) {
	s.mu.Lock()
	s.lifetime = l
	s.mu.Unlock()
}

func (s *state) mappingLifetime() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lifetime
}

// roundTrip is the last measured RTT (zero before the first Pong).
func (s *state) roundTrip() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rtt
}

func (s *state) setRetry(at time.Time) {
	s.mu.Lock()
	s.retryAt = at
	s.mu.Unlock()
}

// refusedRetryable reports whether an exposure waits for a retry.
func (s *state) refusedRetryable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.exposures {
		if retryable(e.Status) {
			return true
		}
	}
	return false
}

func (s *state) notice(n protocol.Notice) {
	s.mu.Lock()
	s.last = n
	s.mu.Unlock()
}

func (s *state) lastNotice() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last.Code == 0 {
		return "link closed"
	}
	return s.last.Text
}

func (s *state) setExposures(st []protocol.ExposureStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exposures == nil || len(st) >= len(s.exposures) {
		s.exposures = append([]protocol.ExposureStatus(nil), st...)
		return
	}
	// A partial reply (the relay withdrew some exposures): update in place.
	for _, u := range st {
		for i := range s.exposures {
			if s.exposures[i].Name == u.Name {
				s.exposures[i] = u
			}
		}
	}
}

// Status is the agent's state as `pinhole status` shows it.
type Status struct {
	Role      string     `json:"role"`
	Name      string     `json:"name"`
	Connected bool       `json:"connected"`
	Relay     string     `json:"relay,omitempty"`
	Transport string     `json:"transport,omitempty"`
	RelayAddr string     `json:"relay_addr,omitempty"`
	Observed  string     `json:"public_addr,omitempty"`
	Since     *time.Time `json:"connected_since,omitempty"`
	RTTMillis float64    `json:"rtt_ms,omitempty"`
	// ClockOffsetMillis is the relay's clock minus this system's.
	ClockOffsetMillis int64             `json:"clock_offset_ms,omitempty"`
	LastError         string            `json:"last_error,omitempty"`
	Local             string            `json:"udp_socket"`
	Exposures         []ExposureReport  `json:"exposures"`
	Counters          map[string]uint64 `json:"counters"`
	Process           admin.Process     `json:"process"`
	// NAT is the last NAT measurement (absent before the first).
	NAT *NATStatus `json:"nat,omitempty"`
	// PortMapping is the gateway's mapping of the UDP socket (absent:
	// none, or port_mapping off).
	PortMapping *PortMapStatus `json:"port_mapping,omitempty"`
	// HeartbeatSeconds is the Ping interval now; HeartbeatAuto says it
	// follows the measured mapping lifetime.
	HeartbeatSeconds float64 `json:"heartbeat_s"`
	HeartbeatAuto    bool    `json:"heartbeat_auto"`
	// Peers are the sessions with other agents (peerstatus.go).
	Peers []PeerReport `json:"peers,omitempty"`
}

// PortMapStatus is a port mapping in the words `pinhole nat` prints.
type PortMapStatus struct {
	Protocol        string  `json:"protocol"`
	Address         string  `json:"address"`
	LifetimeSeconds float64 `json:"lifetime_s"`
}

// NATStatus is a NAT measurement in the words `pinhole nat` prints.
type NATStatus struct {
	Type       string    `json:"type"`
	Public     string    `json:"public_address"`
	Mapping    string    `json:"mapping"`
	Filtering  string    `json:"filtering"`
	Ports      string    `json:"port_allocation"`
	Hairpin    string    `json:"hairpinning"`
	MeasuredAt time.Time `json:"measured_at"`
	// LifetimeSeconds is the measured mapping lifetime, a lower bound
	// (absent until measured; 0: shorter than the shortest probe).
	LifetimeSeconds *float64 `json:"lifetime_s,omitempty"`
}

// ExposureReport is one exposure and the relay's verdict on it.
type ExposureReport struct {
	Name    string     `json:"name"`
	Status  string     `json:"status"`
	Detail  string     `json:"detail,omitempty"`
	RetryAt *time.Time `json:"retry_at,omitempty"` // refused for a reason that may pass: registered again then
}

// Status returns a snapshot of the agent.
func (a *Agent) Status() Status {
	proc := admin.ProcessStats() // reads /proc: outside the lock
	peers := a.peers.report()
	cfg := a.cfg.Load()
	hb := a.heartbeatNow() // takes the lock
	s := &a.state
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Role: "agent", Name: cfg.Name, Connected: s.up, LastError: s.lastErr,
		HeartbeatSeconds: hb.Seconds(), HeartbeatAuto: cfg.heartbeatAuto(), Peers: peers,
		Local: a.sock.LocalAddr().String(), Exposures: []ExposureReport{}, Counters: map[string]uint64{
			"streams":             a.stats.Streams.Load(),
			"local_dial_failed":   a.stats.DialFailed.Load(),
			"udp_flows_refused":   a.stats.FlowsRefuse.Load(),
			"bytes_to_local":      a.stats.BytesIn.Load(),
			"bytes_from_local":    a.stats.BytesOut.Load(),
			"datagrams_malformed": a.sock.Malformed.Load(),
			"datagrams_unrouted":  a.sock.Unrouted.Load(),

			"streams_reset_sent":     a.stats.Tunnels.ResetSent.Load(),
			"streams_reset_received": a.stats.Tunnels.ResetReceived.Load(),
			"streams_stalled_reset":  a.stats.Tunnels.StalledReset.Load(),
			"pongs":                  s.pongs,
			"peer_refused":           a.peers.stats.Refused.Load(),
			"peer_wrong_key":         a.peers.stats.WrongKey.Load(),
			"peer_bad_handshake":     a.peers.stats.BadHello.Load(),
			"peer_unrouted":          a.peers.stats.Unrouted.Load(),
			"peer_sessions":          a.peers.stats.Sessions.Load(),
			"peer_path_switches":     a.peers.stats.PathMoves.Load(),
		}, Process: proc}
	a.links.counters(st.Counters)
	if s.up {
		since := s.since
		st.Relay, st.Transport, st.RelayAddr, st.Observed, st.Since = s.relay, s.transport, s.addr.String(), s.observed.String(), &since
		st.RTTMillis = float64(s.rtt.Microseconds()) / 1000
		st.ClockOffsetMillis = s.clock.Milliseconds()
	}
	if !s.natAt.IsZero() {
		n := s.nat
		st.NAT = &NATStatus{Type: n.Classic(), Public: n.Public.String(), Mapping: n.Mapping.String(), Filtering: n.Filtering.String(),
			Ports: n.PortsString(), Hairpin: n.Hairpin.String(), MeasuredAt: s.natAt}
		if s.lifetime != 0 {
			l := max(s.lifetime, 0).Seconds()
			st.NAT.LifetimeSeconds = &l
		}
	}
	if m := a.portmap.Load(); m != nil {
		st.PortMapping = &PortMapStatus{Protocol: m.Protocol, Address: m.Address.String(), LifetimeSeconds: m.Lifetime.Seconds()}
	}
	for _, e := range s.exposures {
		r := ExposureReport{Name: e.Name, Status: e.Status.String(), Detail: e.Detail}
		if retryable(e.Status) && s.up && !s.retryAt.IsZero() {
			at := s.retryAt
			r.RetryAt = &at
		}
		st.Exposures = append(st.Exposures, r)
	}
	return st
}
