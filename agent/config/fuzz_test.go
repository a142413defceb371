package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseAgent: no input may panic the parser, and a config it accepts
// has what the rest of the agent relies on.
func FuzzParseAgent(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/bad/*.yaml")
	seeds = append(seeds, filepath.Join("..", "..", "configs", "agent.yaml"))
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("name: r\nprivate_key: AK6YKmsBpPeymG59x9dAFxIj9SrIIZpoVBXsykAVHWg=\nrelays: [{address: a, public_key: 74LA3Qa9/BxAahrBitq8oTThlLB/tAUjZYh02vOvxFI=}]\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Add([]byte("relays:\n  - &r {address: a}\n  - <<: *r\n    public_key: x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Parse("testdata/fuzz.yaml", b)
		if err != nil {
			if a != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		if a.Name == "" || len(a.Relays) == 0 || a.Heartbeat <= 0 {
			t.Fatalf("accepted an incomplete config: %+v", a)
		}
	})
}
