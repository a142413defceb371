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
	since     time.Time
	rtt       time.Duration
	lastPong  time.Time
	lastErr   string
	last      protocol.Notice
	exposures []protocol.ExposureStatus
	up        bool
}

func (s *state) connected(c *relaylink.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.relay, s.transport, s.addr, s.observed = c.Target.Address, string(c.Transport), c.Addr, c.Observed
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

func (s *state) pong(rtt time.Duration, observed netip.AddrPort) {
	s.mu.Lock()
	s.rtt, s.lastPong = rtt, time.Now()
	if observed.IsValid() {
		s.observed = observed
	}
	s.mu.Unlock()
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
	Role      string            `json:"role"`
	Name      string            `json:"name"`
	Connected bool              `json:"connected"`
	Relay     string            `json:"relay,omitempty"`
	Transport string            `json:"transport,omitempty"`
	RelayAddr string            `json:"relay_addr,omitempty"`
	Observed  string            `json:"public_addr,omitempty"`
	Since     *time.Time        `json:"connected_since,omitempty"`
	RTTMillis float64           `json:"rtt_ms,omitempty"`
	LastError string            `json:"last_error,omitempty"`
	Local     string            `json:"udp_socket"`
	Exposures []ExposureReport  `json:"exposures"`
	Counters  map[string]uint64 `json:"counters"`
	Process   admin.Process     `json:"process"`
}

// ExposureReport is one exposure and the relay's verdict on it.
type ExposureReport struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Status returns a snapshot of the agent.
func (a *Agent) Status() Status {
	proc := admin.ProcessStats() // reads /proc: outside the lock
	s := &a.state
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Role: "agent", Name: a.cfg.Load().Name, Connected: s.up, LastError: s.lastErr,
		Local: a.sock.LocalAddr().String(), Exposures: []ExposureReport{}, Counters: map[string]uint64{
			"streams":             a.stats.Streams.Load(),
			"local_dial_failed":   a.stats.DialFailed.Load(),
			"udp_flows_refused":   a.stats.FlowsRefuse.Load(),
			"bytes_to_local":      a.stats.BytesIn.Load(),
			"bytes_from_local":    a.stats.BytesOut.Load(),
			"datagrams_malformed": a.sock.Malformed.Load(),
			"datagrams_unrouted":  a.sock.Unrouted.Load(),
		}, Process: proc}
	if s.up {
		since := s.since
		st.Relay, st.Transport, st.RelayAddr, st.Observed, st.Since = s.relay, s.transport, s.addr.String(), s.observed.String(), &since
		st.RTTMillis = float64(s.rtt.Microseconds()) / 1000
	}
	for _, e := range s.exposures {
		st.Exposures = append(st.Exposures, ExposureReport{Name: e.Name, Status: e.Status.String(), Detail: e.Detail})
	}
	return st
}
