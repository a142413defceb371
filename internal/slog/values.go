package slog

import (
	"encoding"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"reflect"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pinhole/pinhole/internal/jsonw"
)

// appendValue writes v in the handler's format. Like log/slog it turns a
// panic (a nil pointer whose String or Error method dereferences it) into
// "<nil>" or a !PANIC value instead of crashing the program.
func appendValue(b []byte, json bool, v any) (out []byte) {
	n := len(b)
	defer func() {
		if r := recover(); r != nil {
			s := fmt.Sprintf("!PANIC: %v", r)
			if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
				s = "<nil>"
			}
			if json {
				out = appendJSONString(b[:n], s)
			} else {
				out = appendTextString(b[:n], s)
			}
		}
	}()
	if json {
		return appendJSONValue(b, v)
	}
	return appendTextValue(b, v)
}

// appendTextValue writes v as log/slog's TextHandler does.
func appendTextValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return appendTextString(b, x)
	case time.Time:
		return appendRFC3339Millis(b, x.Round(0))
	case time.Duration:
		return append(b, x.String()...)
	case encoding.TextMarshaler:
		text, err := x.MarshalText()
		if err != nil {
			return appendTextString(b, "!ERROR:"+err.Error())
		}
		return appendTextString(b, string(text))
	case []byte:
		return strconv.AppendQuote(b, string(x))
	}
	if s, ok := scalarText(v); ok {
		return append(b, s...)
	}
	return appendTextString(b, fmt.Sprintf("%+v", v))
}

// scalarText formats the values log/slog stores as numbers or bools (of
// the exact built-in types; named types are "any" there and go through
// fmt, which prints their String method).
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case int:
		return strconv.FormatInt(int64(x), 10), true
	case int8:
		return strconv.FormatInt(int64(x), 10), true
	case int16:
		return strconv.FormatInt(int64(x), 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	case uint8:
		return strconv.FormatUint(uint64(x), 10), true
	case uint16:
		return strconv.FormatUint(uint64(x), 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uintptr:
		return strconv.FormatUint(uint64(x), 10), true
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 64), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// appendTextString writes s bare, or quoted when log/slog would quote it
// (empty, spaces, '=', '"', control or unprintable characters).
func appendTextString(b []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c <= ' ' || c == '=' || c == '"') {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// appendRFC3339Millis is time.RFC3339 with exactly three fraction digits.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	return t.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
}

func appendJSONString(b []byte, s string) []byte { return jsonw.AppendSlogString(b, s) }

func appendJSONTime(b []byte, t time.Time) []byte { return jsonw.AppendTime(b, t) }

// marshalerJSON is encoding/json's Marshaler, named here so that
// encoding/json is not linked.
type marshalerJSON interface {
	MarshalJSON() ([]byte, error)
}

// appendJSONValue writes v as log/slog's JSONHandler does: its own
// strings, numbers, durations (nanoseconds) and times, an error's text,
// and anything else as encoding/json (HTML unescaped) would marshal it.
func appendJSONValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return appendJSONString(b, x)
	case time.Time:
		return appendJSONTime(b, x.Round(0))
	case time.Duration:
		return strconv.AppendInt(b, int64(x), 10)
	case float64:
		return appendJSONFloat(b, x)
	case float32:
		return appendJSONFloat(b, float64(x))
	}
	if s, ok := scalarText(v); ok {
		return append(b, s...)
	}
	if _, jm := v.(marshalerJSON); !jm {
		if err, ok := v.(error); ok {
			return appendJSONString(b, err.Error())
		}
	}
	return appendJSONAny(b, v)
}

// appendJSONAny is encoding/json's Marshal for the values pinhole logs.
func appendJSONAny(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case marshalerJSON:
		out, err := x.MarshalJSON()
		if err != nil {
			return appendJSONString(b, "!ERROR:"+err.Error())
		}
		return append(b, out...)
	case encoding.TextMarshaler:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return append(b, "null"...)
		}
		text, err := x.MarshalText()
		if err != nil {
			return appendJSONString(b, "!ERROR:"+err.Error())
		}
		return jsonw.AppendString(b, string(text), false)
	case []byte:
		if x == nil {
			return append(b, "null"...)
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, x)
		return append(b, '"')
	case *net.UDPAddr:
		if x == nil {
			return append(b, "null"...)
		}
		return appendJSONAddr(b, x.IP, x.Port, x.Zone)
	case *net.TCPAddr:
		if x == nil {
			return append(b, "null"...)
		}
		return appendJSONAddr(b, x.IP, x.Port, x.Zone)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return jsonw.AppendString(b, rv.String(), false)
	case reflect.Bool:
		return strconv.AppendBool(b, rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(b, rv.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return appendJSONFloat(b, rv.Float())
	case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map:
		if rv.IsNil() {
			return append(b, "null"...)
		}
	}
	// Not logged by pinhole (structs, slices, maps): fmt's words, quoted,
	// rather than a reflection encoder.
	return appendJSONString(b, fmt.Sprintf("%+v", v))
}

// appendJSONFloat is encoding/json's float, and log/slog's error for the
// values it refuses.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendJSONString(b, "!ERROR:json: unsupported value: "+strconv.FormatFloat(f, 'g', -1, 64))
	}
	return jsonw.AppendFloat(b, f)
}

// appendJSONAddr is encoding/json's form of net.UDPAddr and net.TCPAddr.
func appendJSONAddr(b []byte, ip net.IP, port int, zone string) []byte {
	b = append(b, `{"IP":`...)
	b = appendJSONAny(b, ip)
	b = append(b, `,"Port":`...)
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, `,"Zone":`...)
	b = jsonw.AppendString(b, zone, false)
	return append(b, '}')
}
