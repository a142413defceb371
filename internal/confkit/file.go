package confkit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem at a place in a config file. Its text is
// "FILE:LINE: FIELD: MSG", the form editors and grep jump to.
type Error struct {
	File  string // the path as the caller gave it
	Line  int    // 1-based
	Field string // dotted path such as expose[1].local; "" for the file itself
	Msg   string

	col int // orders errors on one line (flow mappings); not printed
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// Doc is one config file being read: it collects the errors found so far
// and the mappings handed out, whose unread fields Err reports as unknown.
type Doc struct {
	file string
	errs []*Error
	maps []*Map

	// budget counts the fields and list items still to be read. Aliases
	// and merge keys let a small file name the same nodes many times over
	// (a list of aliases to a mapping of aliases...); the budget keeps
	// reading linear in the file's size, as yaml.v3 itself does when it
	// decodes into Go values.
	budget    int
	exhausted bool
}

// NewDoc starts reading the file named file (used in messages and to
// resolve relative key file paths).
func NewDoc(file string) *Doc { return &Doc{file: file, budget: 1000} }

// File returns the path given to NewDoc.
func (d *Doc) File() string { return d.file }

// Dir is the directory relative paths in the file are resolved against.
func (d *Doc) Dir() string { return filepath.Dir(d.file) }

// Errorf records a problem at node n (nil: line 1) for field.
func (d *Doc) Errorf(n *yaml.Node, field, format string, args ...any) {
	line, col := 1, 0
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...), col: col})
}

// Err reports unknown fields, then returns every error in file order
// joined with errors.Join (one per line of text), or nil.
func (d *Doc) Err() error {
	for _, m := range d.maps {
		m.reportUnknown()
	}
	d.maps = nil
	sort.SliceStable(d.errs, func(i, j int) bool {
		a, b := d.errs[i], d.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.col < b.col
	})
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// spend takes cost reads from the budget and reports whether they were
// left. The first refusal is recorded as an error at node at.
func (d *Doc) spend(cost int, at *yaml.Node) bool {
	if d.budget >= cost {
		d.budget -= cost
		return true
	}
	if !d.exhausted {
		d.exhausted = true
		d.Errorf(at, "", "aliases and merges (*name, <<) expand too far; write the fields out")
	}
	return false
}

// yamlLineRE finds the line number in yaml.v3's error text.
var yamlLineRE = regexp.MustCompile(`line (\d+): `)

// Root parses data as one YAML document and returns its top-level mapping.
// It returns nil, with the error recorded, when the file is not YAML, is
// empty or holds more than one document; the caller then returns Err.
func (d *Doc) Root(data []byte) *Map {
	root, err := decodeOne(data)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 1
		if m := yamlLineRE.FindStringSubmatchIndex(msg); m != nil {
			line, _ = strconv.Atoi(msg[m[2]:m[3]])
			msg = msg[:m[0]] + msg[m[1]:]
		}
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Msg: "not valid YAML: " + msg})
		return nil
	}
	if root == nil || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		d.Errorf(nil, "", "the file is empty")
		return nil
	}
	// Ten reads per input byte is far more than any honest file needs (a
	// field takes several bytes), and bounds the worst case to milliseconds.
	d.budget += 10 * len(data)
	if root = resolve(root); root.Kind != yaml.MappingNode {
		d.Errorf(root, "", "the top level must be a mapping of fields (name: value), not %s", kindName(root))
		return nil
	}
	return d.Map(root, "")
}

// errSecondDoc is the message for a stream of several documents: only the
// first would be read, silently dropping the rest.
var errSecondDoc = errors.New("only one document is allowed (remove the --- line)")

// decodeOne decodes the first document and refuses a second one. It
// returns a nil node for an empty stream. yaml.v3 is not known to panic
// on any input since v3.0.0, but a decoder must never take the agent down,
// so a panic becomes an error.
func decodeOne(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("parser failure: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("line %d: %w", max(next.Line-1, 1), errSecondDoc)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// resolve follows aliases (*name) to the anchored node. yaml.v3 refuses
// alias cycles while parsing; the bound is only a second guard.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports an explicit null (`field:`, `field: ~`), which counts as
// absent.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "an alias"
}
