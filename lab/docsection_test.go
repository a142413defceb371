package lab

import "testing"

func TestReplaceSection(t *testing.T) {
	const h = "## Heartbeats"
	for _, c := range []struct{ name, doc, want string }{
		{"append", "# NAT matrix\n\ntable\n", "# NAT matrix\n\ntable\n\n## Heartbeats\nnew\n"},
		{"replace at end", "# NAT matrix\n\ntable\n\n## Heartbeats\nold\nold\n", "# NAT matrix\n\ntable\n\n## Heartbeats\nnew\n"},
		{"replace in the middle", "# M\n\n## Heartbeats\nold\n\n## Other\nkeep\n", "# M\n\n## Heartbeats\nnew\n\n## Other\nkeep\n"},
		{"at the start", "## Heartbeats\nold\n", "## Heartbeats\nnew\n"},
	} {
		if got := ReplaceSection(c.doc, h, h+"\nnew\n"); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	if got := Section("# M\n\n## Heartbeats\nx\n\n## Other\ny\n", h); got != "## Heartbeats\nx\n\n" {
		t.Errorf("Section: got %q", got)
	}
	if got := Section("# M\n", h); got != "" {
		t.Errorf("Section of a doc without it: got %q", got)
	}
}
