package config

import (
	"regexp"
	"strconv"
	"testing"
)

// TestSplitLinePrefix checks the hand-written split of yaml.v3's "line N:
// text" messages against the pattern it replaced, edge cases included.
func TestSplitLinePrefix(t *testing.T) {
	re := regexp.MustCompile(`^line (\d+): (.*)$`)
	for _, msg := range []string{
		"line 3: mapping values are not allowed in this context",
		"line 12: did not find expected key",
		"line 0: x",
		"line 7: ",
		"line 7:",
		"line : x",
		"line x: y",
		"line 1a: y",
		"line 2: a: b",
		"line 2: two\nlines",
		"Line 2: x",
		" line 2: x",
		"line  2: x",
		"line 99999999999999999999: too big",
		"unmarshal errors",
		"",
	} {
		n, text, ok := splitLinePrefix(msg)
		m := re.FindStringSubmatch(msg)
		if ok != (m != nil) {
			t.Errorf("%q: matched %v, the pattern says %v", msg, ok, m != nil)
			continue
		}
		if m == nil {
			continue
		}
		wantN, _ := strconv.Atoi(m[1])
		if n != wantN || text != m[2] {
			t.Errorf("%q: got (%d, %q), want (%d, %q)", msg, n, text, wantN, m[2])
		}
	}
}
