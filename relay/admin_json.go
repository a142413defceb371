package relay

import "github.com/pinhole/pinhole/internal/jsonw"

// The status document written without encoding/json (internal/jsonw): one
// line per field in the order of the struct, the key of its json tag and
// the Omit variant for omitempty. A field added to a struct needs its line
// here; admin_json_test.go compares with encoding/json and fails without.

// WriteJSON writes s as encoding/json would.
func (s Status) WriteJSON(w *jsonw.Writer, key string) {
	w.Object(key)
	w.String("role", s.Role)
	w.String("addr", s.Addr)
	if s.Agents == nil {
		w.Null("agents")
	} else {
		w.Array("agents")
		for _, a := range s.Agents {
			a.WriteJSON(w, "")
		}
		w.End()
	}
	w.Uints("counters", s.Counter)
	s.Process.WriteJSON(w, "process")
	w.End()
}

// WriteJSON writes a as encoding/json would.
func (a AgentStatus) WriteJSON(w *jsonw.Writer, key string) {
	w.Object(key)
	w.String("name", a.Name)
	w.String("transport", a.Transport)
	w.String("addr", a.Addr)
	w.Time("connected_since", a.Since)
	w.StringOmit("software", a.Software)
	w.Int("streams", int64(a.Streams))
	w.StringOmit("link", a.Link)
	if a.Exposures == nil {
		w.Null("exposures")
	} else {
		w.Array("exposures")
		for _, e := range a.Exposures {
			e.WriteJSON(w, "")
		}
		w.End()
	}
	w.End()
}

// WriteJSON writes e as encoding/json would.
func (e ExposureStatus) WriteJSON(w *jsonw.Writer, key string) {
	w.Object(key)
	w.String("name", e.Name)
	w.String("proto", e.Proto)
	w.Uint("port", uint64(e.Port))
	w.IntOmit("udp_flows", int64(e.Flows))
	w.End()
}
