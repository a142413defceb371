package lab

import "strings"

// HeartbeatHeading starts make lab-heartbeat's section of docs/nat-matrix.md.
const HeartbeatHeading = "## Heartbeats and NAT mapping timeouts"

// ReplaceSection returns doc with the section that starts at the line
// heading (a "## " heading) replaced by section, up to the next heading of
// the same level or the end; without such a section, section is appended.
// make lab-matrix and make lab-heartbeat each write their own section of
// docs/nat-matrix.md and keep the other's.
func ReplaceSection(doc, heading, section string) string {
	section = strings.TrimRight(section, "\n") + "\n"
	start := strings.Index(doc, "\n"+heading+"\n")
	if start < 0 {
		if strings.HasPrefix(doc, heading+"\n") {
			start = -1
		} else {
			return strings.TrimRight(doc, "\n") + "\n\n" + section
		}
	}
	start++ // the heading's first byte
	end := len(doc)
	if next := strings.Index(doc[start+len(heading):], "\n## "); next >= 0 {
		end = start + len(heading) + next + 1
	}
	rest := doc[end:]
	if rest != "" {
		section += "\n"
	}
	return doc[:start] + section + rest
}

// Section returns the section of doc that starts at heading (see
// ReplaceSection), or "".
func Section(doc, heading string) string {
	start := strings.Index("\n"+doc, "\n"+heading+"\n")
	if start < 0 {
		return ""
	}
	s := doc[start:]
	if next := strings.Index(s[len(heading):], "\n## "); next >= 0 {
		s = s[:len(heading)+next+1]
	}
	return s
}
