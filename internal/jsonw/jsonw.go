// Package jsonw writes JSON the way encoding/json's Encoder does, without
// reflection: the status documents (`pinhole status`, the admin port) and
// `pinhole nat --json` call it field by field. encoding/json's encoder is
// the reflection machinery that walks struct tags at run time; with log/slog
// (whose JSON handler links it: internal/slog) it cost 234,774 bytes of the
// mipsle binary for a few fixed documents.
//
// A type that writes itself has a WriteJSON(w *jsonw.Writer, key string)
// method (admin.Document) listing its fields in struct order, one call per
// field, e.g.
//
//	func (s Status) WriteJSON(w *jsonw.Writer, key string) {
//		w.Object(key)                   // "" for the whole document
//		w.String("name", s.Name)        // `json:"name"`
//		w.StringOmit("relay", s.Relay)  // `json:"relay,omitempty"`
//		s.Process.WriteJSON(w, "process")
//		w.End()
//	}
//
// Adding a field to such a type means adding its line at the same place in
// WriteJSON (a nested struct gets a WriteJSON of its own, a slice an
// Array("key") ... End() loop). The type's test fills every field of the
// struct by reflection (jsonwtest.Fill, in tests only) and compares the
// bytes with encoding/json, so a forgotten or misplaced field fails it.
package jsonw

import (
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Writer appends one JSON document to B. With Indent set it matches
// json.Encoder.SetIndent("", Indent); otherwise the compact form.
type Writer struct {
	B      []byte
	Indent string
	// HTML escapes <, > and & as encoding/json does by default.
	HTML  bool
	stack []level
}

type level struct {
	array bool
	n     int // members written so far
}

// Object opens an object: the document itself (key "" at the top level or
// inside an array), or a field of the enclosing object.
func (w *Writer) Object(key string) { w.open(key, '{', false) }

// Array opens an array, as Object does an object.
func (w *Writer) Array(key string) { w.open(key, '[', true) }

func (w *Writer) open(key string, c byte, array bool) {
	w.key(key)
	w.B = append(w.B, c)
	w.stack = append(w.stack, level{array: array})
}

// End closes the innermost object or array.
func (w *Writer) End() {
	top := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	if top.n > 0 {
		w.newline()
	}
	if top.array {
		w.B = append(w.B, ']')
	} else {
		w.B = append(w.B, '}')
	}
}

// key starts a value: a separator, the indentation and, inside an object,
// the quoted key.
func (w *Writer) key(k string) {
	if len(w.stack) == 0 {
		return
	}
	top := &w.stack[len(w.stack)-1]
	if top.n > 0 {
		w.B = append(w.B, ',')
	}
	top.n++
	w.newline()
	if top.array {
		return
	}
	w.B = AppendString(w.B, k, w.HTML)
	w.B = append(w.B, ':')
	if w.Indent != "" {
		w.B = append(w.B, ' ')
	}
}

func (w *Writer) newline() {
	if w.Indent == "" {
		return
	}
	w.B = append(w.B, '\n')
	for range w.stack {
		w.B = append(w.B, w.Indent...)
	}
}

// String writes a string field (or array element, with key "").
func (w *Writer) String(key, v string) {
	w.key(key)
	w.B = AppendString(w.B, v, w.HTML)
}

// Int writes an integer.
func (w *Writer) Int(key string, v int64) {
	w.key(key)
	w.B = strconv.AppendInt(w.B, v, 10)
}

// Uint writes an unsigned integer.
func (w *Writer) Uint(key string, v uint64) {
	w.key(key)
	w.B = strconv.AppendUint(w.B, v, 10)
}

// Float writes a float64 as encoding/json does (NaN and infinities, which
// it refuses, as null).
func (w *Writer) Float(key string, v float64) {
	w.key(key)
	w.B = AppendFloat(w.B, v)
}

// Bool writes true or false.
func (w *Writer) Bool(key string, v bool) {
	w.key(key)
	w.B = strconv.AppendBool(w.B, v)
}

// Time writes t as time.Time's MarshalJSON does (RFC 3339, nanoseconds).
func (w *Writer) Time(key string, t time.Time) {
	w.key(key)
	w.B = AppendTime(w.B, t)
}

// Null writes null (a nil pointer, slice or map).
func (w *Writer) Null(key string) {
	w.key(key)
	w.B = append(w.B, "null"...)
}

// Uints writes a map of counters as encoding/json does: keys sorted,
// null for a nil map.
func (w *Writer) Uints(key string, m map[string]uint64) {
	if m == nil {
		w.Null(key)
		return
	}
	w.Object(key)
	for _, k := range sortedKeys(m) {
		w.Uint(k, m[k])
	}
	w.End()
}

// Strings writes a map of strings as Uints does counters.
func (w *Writer) Strings(key string, m map[string]string) {
	if m == nil {
		w.Null(key)
		return
	}
	w.Object(key)
	for _, k := range sortedKeys(m) {
		w.String(k, m[k])
	}
	w.End()
}

// sortedKeys sorts with sort.Sort, which the binary links anyway, rather
// than a generic sort instantiated for strings (about 12 KB).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Sort(sort.StringSlice(keys))
	return keys
}

// The Omit variants are the omitempty fields: nothing for the zero value.

func (w *Writer) StringOmit(key, v string) {
	if v != "" {
		w.String(key, v)
	}
}

func (w *Writer) IntOmit(key string, v int64) {
	if v != 0 {
		w.Int(key, v)
	}
}

func (w *Writer) UintOmit(key string, v uint64) {
	if v != 0 {
		w.Uint(key, v)
	}
}

func (w *Writer) FloatOmit(key string, v float64) {
	if v != 0 {
		w.Float(key, v)
	}
}

// TimeOmit writes *t, nothing for nil (a *time.Time with omitempty).
func (w *Writer) TimeOmit(key string, t *time.Time) {
	if t != nil {
		w.Time(key, *t)
	}
}

// AppendTime appends t quoted in time.RFC3339Nano, as time.Time's
// MarshalJSON does for years 0 to 9999.
func AppendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// AppendFloat appends f as encoding/json formats a float64: the shortest
// decimal, in exponent form only below 1e-6 or from 1e21, with a one-digit
// negative exponent unpadded (1e-7, not 1e-07). NaN and infinities, which
// encoding/json refuses, are written as null.
func AppendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// AppendString appends s quoted and escaped as encoding/json does: ", \
// and control characters escaped (\b \f \n \r \t short), invalid UTF-8 as
// \ufffd, U+2028 and U+2029 escaped, and with html also <, > and &.
func AppendString(b []byte, s string, html bool) []byte {
	return appendString(b, s, html, true)
}

// AppendSlogString is AppendString as log/slog's JSON handler escapes its
// own strings: no HTML escapes, and \b and \f as \u0008 and \u000c.
func AppendSlogString(b []byte, s string) []byte {
	return appendString(b, s, false, false)
}

func appendString(b []byte, s string, html, shortBF bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b' && shortBF:
				b = append(b, '\\', 'b')
			case c == '\f' && shortBF:
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
