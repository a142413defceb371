package confkit

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Map reads the fields of one YAML mapping. Every field asked for (present
// or not) becomes known; the fields nobody asked for are reported as
// unknown when the Doc's Err runs. A Map for an absent section is empty,
// so readers need no nil checks and defaults apply.
type Map struct {
	doc   *Doc
	node  *yaml.Node // nil for an absent section
	path  string
	wrong bool                  // node is not a mapping (reported): its fields are not missing
	keys  []*yaml.Node          // key nodes in document order (merged ones last)
	vals  map[string]*yaml.Node // value of each field, aliases resolved
	known map[string]bool
}

// Map wraps node (a mapping, nil or null for an absent section) whose
// fields are named path.field in messages.
func (d *Doc) Map(node *yaml.Node, path string) *Map {
	m := &Map{doc: d, path: path, vals: map[string]*yaml.Node{}, known: map[string]bool{}}
	d.maps = append(d.maps, m)
	node = resolve(node)
	if node == nil || isNull(node) {
		return m
	}
	m.node = node
	if node.Kind != yaml.MappingNode {
		d.Errorf(node, path, "must be a mapping of fields (name: value), not %s", kindName(node))
		m.wrong = true
		return m
	}
	m.collect(node, true, 0)
	return m
}

// maxMergeDepth bounds nested `<<: *anchor` merges.
const maxMergeDepth = 8

// collect records the fields of node. YAML merge keys (`<<: *base`) are
// honoured the way yaml.v3 decodes them into structs: fields written in
// the mapping itself win over merged ones, whatever their order.
func (m *Map) collect(node *yaml.Node, own bool, depth int) {
	if !m.doc.spend(len(node.Content)/2+1, node) {
		return
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			m.doc.Errorf(k, m.path, "field names must be plain words, not %s", kindName(k))
			continue
		}
		if first, dup := m.vals[k.Value]; dup {
			if own {
				m.doc.Errorf(k, m.Path(k.Value), "given twice (first on line %d)", m.keyLine(k.Value, first))
			}
			continue
		}
		m.keys = append(m.keys, k)
		m.vals[k.Value] = resolve(v)
	}
	for _, v := range merges {
		m.merge(v, depth)
	}
}

func (m *Map) merge(v *yaml.Node, depth int) {
	v = resolve(v)
	switch {
	case depth >= maxMergeDepth:
		m.doc.Errorf(v, m.path, "merges (<<) nested too deeply")
	case v.Kind == yaml.MappingNode:
		m.collect(v, false, depth+1)
	case v.Kind == yaml.SequenceNode:
		for _, item := range v.Content {
			m.merge(item, depth+1)
		}
	default:
		m.doc.Errorf(v, m.path, "<< must merge a mapping, not %s", kindName(v))
	}
}

func (m *Map) keyLine(name string, val *yaml.Node) int {
	for _, k := range m.keys {
		if k.Value == name {
			return k.Line
		}
	}
	return val.Line
}

// Path names field inside this mapping for messages: "expose[1].local".
func (m *Map) Path(field string) string {
	if m.path == "" {
		return field
	}
	return m.path + "." + field
}

// Line is the line the mapping starts on (1 for an absent section).
func (m *Map) Line() int {
	if m.node == nil {
		return 1
	}
	return m.node.Line
}

// Doc returns the document the mapping belongs to.
func (m *Map) Doc() *Doc { return m.doc }

// Node returns the value of field, or nil when it is absent or null. It
// marks the field known.
func (m *Map) Node(field string) *yaml.Node {
	m.known[field] = true
	v := m.vals[field]
	if v == nil || isNull(v) {
		return nil
	}
	return v
}

// Has reports whether field is given (and marks it known).
func (m *Map) Has(field string) bool { return m.Node(field) != nil }

// Require returns the value of field, or records that it is missing (at
// the mapping's first line) and returns nil. hint, if any, tells what to
// write.
func (m *Map) Require(field, hint string) *yaml.Node {
	v := m.Node(field)
	if v == nil && !m.wrong {
		msg := "is required"
		if hint != "" {
			msg += " (" + hint + ")"
		}
		m.doc.Errorf(m.at(field), m.Path(field), "%s", msg)
	}
	return v
}

// at is the node to blame for field: its value, else its key (`field:`
// with no value), else the mapping.
func (m *Map) at(field string) *yaml.Node {
	if v := m.vals[field]; v != nil {
		return v
	}
	if m.node != nil {
		return m.node
	}
	return nil
}

// Errorf records a problem with field at its line (or the mapping's).
func (m *Map) Errorf(field, format string, args ...any) {
	m.doc.Errorf(m.at(field), m.Path(field), format, args...)
}

// Sub returns the nested section field (empty when absent).
func (m *Map) Sub(field string) *Map {
	return m.doc.Map(m.Node(field), m.Path(field))
}

// List returns the items of a list field (nil when absent), reporting any
// other kind of value.
func (m *Map) List(field string) []*yaml.Node {
	v := m.Node(field)
	if v == nil {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		m.Errorf(field, "must be a list, not %s", kindName(v))
		return nil
	}
	if !m.doc.spend(len(v.Content)+1, v) {
		return nil
	}
	items := make([]*yaml.Node, len(v.Content))
	for i, n := range v.Content {
		items[i] = resolve(n)
	}
	return items
}

// Maps returns a list field whose items are mappings, each named
// field[i] in messages.
func (m *Map) Maps(field string) []*Map {
	items := m.List(field)
	maps := make([]*Map, len(items))
	for i, n := range items {
		maps[i] = m.doc.Map(n, fmt.Sprintf("%s[%d]", m.Path(field), i))
	}
	return maps
}

// ItemPath names item i of a list field: "agents[0].allow_ports[2]".
func (m *Map) ItemPath(field string, i int) string {
	return fmt.Sprintf("%s[%d]", m.Path(field), i)
}

// reportUnknown records every field nobody asked for, suggesting the
// closest known name: most unknown fields are typos.
func (m *Map) reportUnknown() {
	var known []string
	for name := range m.known {
		known = append(known, name)
	}
	for _, k := range m.keys {
		if m.known[k.Value] {
			continue
		}
		msg := "unknown field"
		if s := closest(k.Value, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		m.doc.Errorf(k, m.Path(k.Value), "%s", msg)
	}
}

// closest returns the one known name within a typo of s: an edit distance
// of 1 for words up to 4 letters, 2 for longer ones, ignoring case. It
// returns "" when none is that close, or when two are equally close (a
// guess between "v1" and "v2" helps nobody).
func closest(s string, known []string) string {
	s = strings.ToLower(s)
	limit := 1
	if len(s) > 4 {
		limit = 2
	}
	best, bestD, tie := "", limit+1, false
	for _, k := range known {
		switch d := distance(s, k); {
		case d < bestD:
			best, bestD, tie = k, d, false
		case d == bestD && k != best:
			tie = true
		}
	}
	if tie {
		return ""
	}
	return best
}

// distance is the optimal string alignment distance: Levenshtein plus
// swapped neighbours as one edit ("fats3" is one typo from "fast3").
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b)) // no typo of a field name is this long
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
