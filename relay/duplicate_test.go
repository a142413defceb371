package relay

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol/secure"
)

// TestDupTracker: only an A-B-A pattern within dupWindow flags a key; an
// agent that restarts or rebinds (a new address each time) never does.
func TestDupTracker(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("192.0.2.1:4000"), netip.MustParseAddrPort("198.51.100.7:5000"), netip.MustParseAddrPort("192.0.2.1:4001")
	t0 := time.Unix(1000, 0)
	type repl struct {
		old, new netip.AddrPort
		after    time.Duration
		dup      bool
		first    bool
	}
	cases := []struct {
		name  string
		steps []repl
	}{
		{"two agents", []repl{{a, b, 0, false, false}, {b, a, time.Second, true, true}, {a, b, 2 * time.Second, true, false}}},
		{"rebinding agent", []repl{{a, c, 0, false, false}, {c, b, time.Second, false, false}, {b, c, 40 * time.Second, false, false}}},
		{"restart from one address", []repl{{a, a, 0, false, false}, {a, a, time.Second, false, false}}},
		{"slow alternation is not flagged", []repl{{a, b, 0, false, false}, {b, a, 31 * time.Second, false, false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d dupTracker
			var key secure.PublicKey
			now := t0
			for i, s := range tc.steps {
				now = now.Add(s.after)
				dup, first := d.replaced(key, s.old, s.new, now)
				if dup != s.dup || first != s.first {
					t.Fatalf("step %d: got dup %v first %v, want %v %v", i, dup, first, s.dup, s.first)
				}
			}
		})
	}
	var d dupTracker
	var key secure.PublicKey
	d.replaced(key, a, b, t0)
	d.replaced(key, b, a, t0.Add(time.Second))
	if !d.flagged(key, t0.Add(5*time.Minute)) {
		t.Fatal("flag forgotten within dupMemory")
	}
	if d.flagged(key, t0.Add(5*time.Minute+dupMemory+time.Second)) {
		t.Fatal("flag kept past dupMemory")
	}
}
