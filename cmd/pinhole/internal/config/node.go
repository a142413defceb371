// Package config reads agent.yaml and relay.yaml into the Config structs of
// packages agent and relay.
//
// Decoding walks the yaml.Node tree by hand instead of using struct tags:
// every value keeps its line number, unknown fields are errors with a
// suggestion, and every problem is collected, so the operator sees
//
//	agent.yaml:12: expose[1].remote_port: 70000 is out of range (1-65535)
//	agent.yaml:15: expose[2].protcol: unknown field (did you mean "protocol"?)
//
// all at once, before any socket is opened. (yaml.v3's KnownFields works
// only without custom unmarshalers, and would stop at the first error.)
package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem at a place in a file.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// collector gathers errors for one file.
type collector struct {
	file string
	errs []error
}

func (c *collector) add(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (c *collector) err() error {
	sort.SliceStable(c.errs, func(i, j int) bool {
		return c.errs[i].(*Error).Line < c.errs[j].(*Error).Line
	})
	return errors.Join(c.errs...)
}

// mapping reads the fields of one YAML mapping and reports the ones
// nobody asked for.
type mapping struct {
	c      *collector
	node   *yaml.Node
	path   string
	fields map[string]*yaml.Node
	keys   map[string]*yaml.Node
	order  []string // keys in file order, so errors come out in a stable order
	asked  []string
}

func newMapping(c *collector, n *yaml.Node, path string) *mapping {
	m := &mapping{c: c, node: n, path: path, fields: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}}
	if n == nil {
		return m
	}
	if n.Kind != yaml.MappingNode {
		c.add(n, path, "must be a mapping of fields")
		return m
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := m.fields[k.Value]; dup {
			c.add(k, m.sub(k.Value), "field given twice")
		}
		if _, seen := m.keys[k.Value]; !seen {
			m.order = append(m.order, k.Value)
		}
		m.fields[k.Value] = v
		m.keys[k.Value] = k
	}
	return m
}

func (m *mapping) sub(name string) string {
	if m.path == "" {
		return name
	}
	return m.path + "." + name
}

// get returns the value node of a field, or nil when absent (null counts
// as absent).
func (m *mapping) get(name string) *yaml.Node {
	m.asked = append(m.asked, name)
	v := m.fields[name]
	if v != nil && v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	return v
}

// require returns the field's node or reports it missing.
func (m *mapping) require(name string) *yaml.Node {
	v := m.get(name)
	if v == nil {
		n := m.node
		if k := m.keys[name]; k != nil {
			n = k
		}
		m.c.add(n, m.sub(name), "is required")
	}
	return v
}

// done reports every field that was never asked for.
func (m *mapping) done() {
	for _, name := range m.order {
		k := m.keys[name]
		if !contains(m.asked, name) {
			msg := "unknown field"
			if s := closest(name, m.asked); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			m.c.add(k, m.sub(name), "%s", msg)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// closest returns the known name within edit distance 2 of s, if any.
func closest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(strings.ToLower(s), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance, enough for typo suggestions.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// sequence returns the items of a sequence field, reporting other kinds.
func (m *mapping) sequence(name string) []*yaml.Node {
	v := m.get(name)
	if v == nil {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		m.c.add(v, m.sub(name), "must be a list")
		return nil
	}
	return v.Content
}
