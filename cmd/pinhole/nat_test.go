package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"testing"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/protocol"
)

// TestNATJSON: `pinhole nat --json` prints what json.Encoder printed for
// the same facts (blocked, open with a lifetime line, and an error text
// with characters JSON escapes).
func TestNATJSON(t *testing.T) {
	open := agent.NATResult{NATReport: protocol.NATReport{UDP: protocol.Yes, Public: netip.MustParseAddrPort("198.51.100.7:40000"),
		Mapping: protocol.MappingEndpointIndependent, Hairpin: protocol.No}, Relay: netip.MustParseAddrPort("203.0.113.1:7700")}
	blocked := agent.NATResult{Relay: netip.MustParseAddrPort("[2001:db8::1]:7700"), TCP: protocol.Yes}
	for _, c := range []struct {
		res   agent.NATResult
		extra [][2]string
	}{
		{blocked, nil},
		{open, [][2]string{{"mapping lifetime", lifetimeWords(0, errors.New(`read udp <nil>: "timeout" & more`))}}},
	} {
		m := natJSON(c.res)
		for _, l := range c.extra {
			m[l[0]] = l[1]
		}
		var got, want bytes.Buffer
		writeJSONLine(&got, m)
		if err := json.NewEncoder(&want).Encode(m); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("got  %s\nwant %s", got.String(), want.String())
		}
	}
}
