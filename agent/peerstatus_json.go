package agent

import "github.com/pinhole/pinhole/internal/jsonw"

// WriteJSON writes r as encoding/json would (see status_json.go).
func (r PeerReport) WriteJSON(w *jsonw.Writer, key string) {
	w.Object(key)
	w.String("name", r.Name)
	w.String("path", r.Path)
	w.StringOmit("status", r.Status)
	w.Bool("initiator", r.Initiator)
	w.StringOmit("direct_addr", r.Direct)
	w.StringOmit("found_as", r.FoundAs)
	w.StringOmit("strategy", r.Strategy)
	w.FloatOmit("rtt_ms", r.RTTMillis)
	w.Uint("bytes_in", r.BytesIn)
	w.Uint("bytes_out", r.BytesOut)
	w.Uint("datagrams_direct", r.DatagramsDirect)
	w.Uint("datagrams_relayed", r.DatagramsRelayed)
	w.Int("path_switches", int64(r.PathSwitches))
	w.FloatOmit("time_to_direct_ms", r.TimeToDirectMillis)
	w.TimeOmit("last_punch", r.LastAttempt)
	w.StringOmit("last_punch_failure", r.LastFailure)
	w.End()
}
