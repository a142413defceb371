package portmap

import "strings"

// A bounded scanner for the little XML an IGD sends (the device
// description and SOAP answers): the text of elements found by local
// name, whatever their namespace prefix. It never recurses and reads
// each byte a bounded number of times, so garbage costs a failed lookup,
// not a hang; encoding/xml would add its weight for no more safety here.

// tagAt reads the tag at s[i] == '<': its local name (prefix dropped),
// whether it closes, and the index after its '>' (-1: none).
func tagAt(s string, i int) (name string, closing bool, end int) {
	j := i + 1
	if j < len(s) && s[j] == '/' {
		closing = true
		j++
	}
	k := j
	for k < len(s) && s[k] != '>' && s[k] != ' ' && s[k] != '\t' && s[k] != '\r' && s[k] != '\n' && s[k] != '/' {
		k++
	}
	name = s[j:k]
	if c := strings.LastIndexByte(name, ':'); c >= 0 {
		name = name[c+1:]
	}
	e := strings.IndexByte(s[k:], '>')
	if e < 0 {
		return name, closing, -1
	}
	return name, closing, k + e + 1
}

// element finds the first <name ...>content</name> at or after from and
// returns content and the index after the closing tag (ok false: none).
// An element of the same name nested inside it ends it early; the IGD
// documents this reads have none.
func element(s, name string, from int) (content string, next int, ok bool) {
	start := -1
	for i := from; i < len(s); {
		lt := strings.IndexByte(s[i:], '<')
		if lt < 0 {
			return "", len(s), false
		}
		i += lt
		n, closing, end := tagAt(s, i)
		if end < 0 {
			return "", len(s), false
		}
		switch {
		case n != name:
		case !closing && start < 0 && s[end-2] == '/': // <name/>: empty
			return "", end, true
		case !closing && start < 0:
			start = end
		case closing && start >= 0:
			return s[start:i], end, true
		}
		i = end
	}
	return "", len(s), false
}

// text returns the unescaped, trimmed text of the first element name.
func text(s, name string) (string, bool) {
	c, _, ok := element(s, name, 0)
	return unescape(strings.TrimSpace(c)), ok
}

// unescape replaces XML's predefined entities (XML 1.0 §4.6), all a URL
// or an address in an IGD document may carry; &amp; last, so "&amp;lt;"
// becomes "&lt;". (strings.Replacer would cost 14 KB on mipsle.)
func unescape(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	for _, e := range [...][2]string{{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", `"`}, {"&apos;", "'"}, {"&amp;", "&"}} {
		s = strings.ReplaceAll(s, e[0], e[1])
	}
	return s
}
