package protocol

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"a", true},
		{"My-host_1.lan", true},
		{strings.Repeat("x", MaxNameLen), true},
		{"", false},
		{strings.Repeat("x", MaxNameLen+1), false},
		{"has space", false},
		{"slash/", false},
		{"colon:", false},
		{"web\n", false}, // a trailing newline is not ignored
		{"\nweb", false},
		{"caf\u00e9", false}, // ASCII only
		{"\x00", false},
		{"tab\t", false},
	} {
		if got := ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
