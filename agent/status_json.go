package agent

import (
	"github.com/pinhole/pinhole/internal/admin"
	"github.com/pinhole/pinhole/internal/jsonw"
)

// The status document written without encoding/json (internal/jsonw): one
// line per field in the order of the struct, the key of its json tag and
// the Omit variant for omitempty. A field added to a struct needs its line
// here; status_json_test.go compares with encoding/json and fails without.

var _ admin.Document = Status{}

// WriteJSON writes s as encoding/json would.
func (s Status) WriteJSON(w *jsonw.Writer, key string) {
	w.Object(key)
	w.String("role", s.Role)
	w.String("name", s.Name)
	w.Bool("connected", s.Connected)
	w.StringOmit("relay", s.Relay)
	w.StringOmit("transport", s.Transport)
	w.StringOmit("relay_addr", s.RelayAddr)
	w.StringOmit("public_addr", s.Observed)
	w.TimeOmit("connected_since", s.Since)
	w.FloatOmit("rtt_ms", s.RTTMillis)
	w.IntOmit("clock_offset_ms", s.ClockOffsetMillis)
	w.StringOmit("last_error", s.LastError)
	w.String("udp_socket", s.Local)
	if s.Exposures == nil {
		w.Null("exposures")
	} else {
		w.Array("exposures")
		for _, e := range s.Exposures {
			e.WriteJSON(w, "")
		}
		w.End()
	}
	w.Uints("counters", s.Counters)
	s.Process.WriteJSON(w, "process")
	if s.NAT != nil {
		s.NAT.WriteJSON(w, "nat")
	}
	if m := s.PortMapping; m != nil {
		w.Object("port_mapping")
		w.String("protocol", m.Protocol)
		w.String("address", m.Address)
		w.Float("lifetime_s", m.LifetimeSeconds)
		w.End()
	}
	w.Float("heartbeat_s", s.HeartbeatSeconds)
	w.Bool("heartbeat_auto", s.HeartbeatAuto)
	if len(s.Peers) > 0 {
		w.Array("peers")
		for _, p := range s.Peers {
			p.WriteJSON(w, "")
		}
		w.End()
	}
	w.End()
}

// WriteJSON writes n as encoding/json would.
func (n NATStatus) WriteJSON(w *jsonw.Writer, key string) {
	w.Object(key)
	w.String("type", n.Type)
	w.String("public_address", n.Public)
	w.String("mapping", n.Mapping)
	w.String("filtering", n.Filtering)
	w.String("port_allocation", n.Ports)
	w.String("hairpinning", n.Hairpin)
	w.Time("measured_at", n.MeasuredAt)
	if n.LifetimeSeconds != nil {
		w.Float("lifetime_s", *n.LifetimeSeconds)
	}
	w.End()
}

// WriteJSON writes e as encoding/json would.
func (e ExposureReport) WriteJSON(w *jsonw.Writer, key string) {
	w.Object(key)
	w.String("name", e.Name)
	w.String("status", e.Status)
	w.StringOmit("detail", e.Detail)
	w.TimeOmit("retry_at", e.RetryAt)
	w.End()
}
