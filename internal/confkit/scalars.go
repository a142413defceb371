package confkit

import (
	"encoding"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"gopkg.in/yaml.v3"
)

// Every reader below returns def when the field is absent, and records an
// error and returns def when the value is malformed, so one pass finds
// every problem in the file. A present value is checked, never clamped.

// Scalar returns the text of a single-value field; false when it is
// absent, or not a single value (recorded as an error).
func (m *Map) Scalar(field string) (string, bool) {
	v := m.Node(field)
	if v == nil {
		return "", false
	}
	if v.Kind != yaml.ScalarNode {
		m.Errorf(field, "must be a single value, not %s", kindName(v))
		return "", false
	}
	return v.Value, true
}

// Str reads a free-form string.
func (m *Map) Str(field, def string) string {
	if s, ok := m.Scalar(field); ok {
		return s
	}
	return def
}

// check runs parse on the field's text and records its error.
func check[T any](m *Map, field string, def T, parse func(string) (T, error)) T {
	s, ok := m.Scalar(field)
	if !ok {
		return def
	}
	v, err := parse(s)
	if err != nil {
		m.Errorf(field, "%v", err)
		return def
	}
	return v
}

// Int reads a whole number in lo..hi.
func (m *Map) Int(field string, def, lo, hi int) int {
	return check(m, field, def, func(s string) (int, error) { return CheckInt(s, lo, hi) })
}

// Port reads a port number (1-65535, or 0-65535 when zeroOK).
func (m *Map) Port(field string, def uint16, zeroOK bool) uint16 {
	lo := 1
	if zeroOK {
		lo = 0
	}
	return uint16(m.Int(field, int(def), lo, 65535))
}

// Bool reads true or false.
func (m *Map) Bool(field string, def bool) bool {
	return check(m, field, def, ParseBool)
}

// Duration reads a duration in lo..hi.
func (m *Map) Duration(field string, def, lo, hi time.Duration) time.Duration {
	return check(m, field, def, func(s string) (time.Duration, error) {
		d, err := ParseDuration(s)
		if err == nil && (d < lo || d > hi) {
			return 0, fmt.Errorf("%s is out of range (%s-%s)", FormatDuration(d), FormatDuration(lo), FormatDuration(hi))
		}
		return d, err
	})
}

// Size reads a byte size; "off" reads as 0.
func (m *Map) Size(field string, def int64) int64 {
	return check(m, field, def, func(s string) (int64, error) {
		if s == "off" {
			return 0, nil
		}
		return ParseSize(s)
	})
}

// Enum reads a typed enum through its UnmarshalText, leaving v as it was
// (the default) when the field is absent or wrong.
func (m *Map) Enum(field string, v encoding.TextUnmarshaler) {
	check(m, field, struct{}{}, func(s string) (struct{}, error) {
		return struct{}{}, v.UnmarshalText([]byte(s))
	})
}

// Name reads a required name (see CheckName).
func (m *Map) Name(field string) string {
	if m.Require(field, "letters, digits, '.', '_' or '-'") == nil {
		return ""
	}
	return check(m, field, "", func(s string) (string, error) { return s, CheckName(s) })
}

// HostPort reads "host:port" (see ParseHostPort). A required field that is
// missing is reported; an optional one returns "".
func (m *Map) HostPort(field string, required bool, defPort uint16) string {
	if required && m.Require(field, "host:port") == nil {
		return ""
	}
	return check(m, field, "", func(s string) (string, error) { return ParseHostPort(s, defPort) })
}

// Listen reads a listen address (see ParseListen).
func (m *Map) Listen(field, def string) string {
	return check(m, field, def, ParseListen)
}

// Admin reads a status endpoint (see ParseAdmin); "off" reads as "". hint
// is added to a not-loopback error, to name a way out if there is one.
func (m *Map) Admin(field, def string, allowRemote bool, hint string) string {
	return check(m, field, def, func(s string) (string, error) {
		a, err := ParseAdmin(s, allowRemote)
		if hint != "" && errors.Is(err, ErrAdminNotLoopback) {
			return "", fmt.Errorf("%w (%s)", err, hint)
		}
		return a, err
	})
}

// IP reads a bare IP address.
func (m *Map) IP(field string, def netip.Addr) netip.Addr {
	return check(m, field, def, ParseIP)
}
