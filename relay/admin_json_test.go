package relay

import (
	"testing"

	"github.com/pinhole/pinhole/internal/jsonw"
	"github.com/pinhole/pinhole/internal/jsonw/jsonwtest"
)

// TestStatusJSON: the status document is byte for byte what encoding/json
// writes (indented, as the admin port serves it, and compact), with every
// field set (a field added to Status, AgentStatus or ExposureStatus but not
// to its WriteJSON fails here) and with the omitempty fields empty.
func TestStatusJSON(t *testing.T) {
	var full Status
	jsonwtest.Fill(&full)
	empty := Status{Agents: []AgentStatus{{}, {Exposures: []ExposureStatus{{}}}}, Counter: map[string]uint64{}}
	for name, s := range map[string]Status{"full": full, "zero": {}, "empty fields": empty} {
		for _, indent := range []string{"  ", ""} {
			t.Run(name, func(t *testing.T) {
				jsonwtest.Equal(t, s, indent, func(w *jsonw.Writer) { s.WriteJSON(w, "") })
			})
		}
	}
}
