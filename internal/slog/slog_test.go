package slog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	stdslog "log/slog"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Types like the ones pinhole logs: an enum with a String method, a named
// string, a TextMarshaler, an error type.
type enum uint8

func (e enum) String() string { return fmt.Sprintf("enum-%d", uint8(e)) }

type name string

type nilErr struct{ s string }

func (e *nilErr) Error() string { return e.s }

// values covers every kind package doc promises to write like log/slog.
func values() []any {
	when := time.Date(2026, 11, 25, 18, 46, 59, 123456789, time.UTC)
	var nilAddr *net.UDPAddr
	var nilE *nilErr
	return []any{
		"k", "plain", "q", "two words", "e", "", "eq", "a=b", "quote", `say "hi"`, "ctl", "tab\there\x00\b\f", "uni", "caf\u00e9 \u2028",
		"bad", "\xff", "bs", `back\slash`, "html", "<a>&",
		"i", 42, "i8", int8(-8), "i16", int16(16), "i32", int32(-32), "i64", int64(-1 << 40),
		"u", uint(7), "u8", uint8(8), "u16", uint16(7702), "u32", uint32(32), "u64", uint64(1 << 63), "up", uintptr(9),
		"f", 1.5, "f32", float32(0.1), "fsmall", 1e-9, "fbig", 1e22, "nan", math.NaN(),
		"b", true, "d", 1500 * time.Millisecond, "d0", time.Duration(0),
		"t", when, "tz", when.In(time.FixedZone("x", -5*3600)),
		"err", errors.New("dial tcp: connection refused"), "wrapped", fmt.Errorf("open: %w", io.EOF), "nilerr", error(nil),
		"nilptr", nilE,
		"ap", netip.MustParseAddrPort("192.0.2.1:7700"), "a6", netip.MustParseAddr("2001:db8::1"), "zero", netip.AddrPort{},
		"udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7700}, "tcp", &net.TCPAddr{IP: net.ParseIP("::1"), Port: 22, Zone: "lo"},
		"udpnil", nilAddr, "udpnoip", &net.UDPAddr{Port: 1},
		"enum", enum(3), "name", name("relay-1"), "bytes", []byte("raw\n"),
		"", "empty key", 17, "odd",
	}
}

// mask replaces each line's own timestamp, which the two loggers take at
// different instants.
var mask = regexp.MustCompile(`^(time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)|\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")`)

func compare(t *testing.T, json bool, log func(l *Logger), std func(l *stdslog.Logger)) {
	t.Helper()
	var got, want bytes.Buffer
	opts, stdOpts := &HandlerOptions{Level: LevelDebug}, &stdslog.HandlerOptions{Level: stdslog.LevelDebug}
	if json {
		log(New(NewJSONHandler(&got, opts)))
		std(stdslog.New(stdslog.NewJSONHandler(&want, stdOpts)))
	} else {
		log(New(NewTextHandler(&got, opts)))
		std(stdslog.New(stdslog.NewTextHandler(&want, stdOpts)))
	}
	g, w := strings.Split(got.String(), "\n"), strings.Split(want.String(), "\n")
	if len(g) != len(w) {
		t.Fatalf("json=%v: %d lines, want %d:\n%s\nwant:\n%s", json, len(g), len(w), got.String(), want.String())
	}
	for i := range g {
		if !mask.MatchString(g[i]) && g[i] != "" {
			t.Errorf("json=%v: line %d starts with no time field: %s", json, i, g[i])
		}
		if gm, wm := mask.ReplaceAllString(g[i], "TIME"), mask.ReplaceAllString(w[i], "TIME"); gm != wm {
			t.Errorf("json=%v line %d:\n got %s\nwant %s", json, i, gm, wm)
		}
	}
}

func TestLinesMatchLogSlog(t *testing.T) {
	args := values()
	bad := []any{"bad key", 1, 2}
	for _, json := range []bool{false, true} {
		compare(t, json, func(l *Logger) {
			l.Info("every kind", args...)
			// One attribute per line as well, so that a difference names it.
			for i := 0; i+1 < len(args); i += 2 {
				l.Debug("one", args[i], args[i+1])
			}
			l.Warn("a message with \"quotes\" and = sign")
			l.Error("", bad...)
			l.Log(context.Background(), LevelInfo+2, "custom level")
			l.Log(context.Background(), LevelDebug-1, "below debug: not written")
			w := l.With("peer", "b", "n", 3)
			w.Info("with", "k", "v")
			w.With().With("relay", netip.MustParseAddrPort("192.0.2.9:1")).Warn("with twice")
			l.Info("parent unchanged")
		}, func(l *stdslog.Logger) {
			l.Info("every kind", args...)
			for i := 0; i+1 < len(args); i += 2 {
				l.Debug("one", args[i], args[i+1])
			}
			l.Warn("a message with \"quotes\" and = sign")
			l.Error("", bad...)
			l.Log(context.Background(), stdslog.LevelInfo+2, "custom level")
			l.Log(context.Background(), stdslog.LevelDebug-1, "below debug: not written")
			w := l.With("peer", "b", "n", 3)
			w.Info("with", "k", "v")
			w.With().With("relay", netip.MustParseAddrPort("192.0.2.9:1")).Warn("with twice")
			l.Info("parent unchanged")
		})
	}
}

func FuzzStrings(f *testing.F) {
	f.Add("msg", "key", "value")
	f.Add("", "a b", "\xff\u2028\"=")
	f.Fuzz(func(t *testing.T, msg, key, value string) {
		for _, json := range []bool{false, true} {
			compare(t, json, func(l *Logger) { l.Info(msg, key, value) },
				func(l *stdslog.Logger) { l.Info(msg, key, value) })
		}
	})
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		l    Level
		want stdslog.Level
	}{{LevelDebug, stdslog.LevelDebug}, {LevelInfo, stdslog.LevelInfo}, {LevelWarn, stdslog.LevelWarn}, {LevelError, stdslog.LevelError}, {LevelError + 3, stdslog.LevelError + 3}, {LevelDebug - 2, stdslog.LevelDebug - 2}, {LevelWarn + 1, stdslog.LevelWarn + 1}} {
		if Level(tc.want) != tc.l || tc.l.String() != tc.want.String() {
			t.Errorf("level %d: %q, want %d %q", tc.l, tc.l, tc.want, tc.want)
		}
	}
	var buf bytes.Buffer
	l := New(NewTextHandler(&buf, nil))
	l.Debug("hidden")
	if l.Enabled(context.Background(), LevelDebug) || !l.Enabled(context.Background(), LevelInfo) || buf.Len() != 0 {
		t.Errorf("nil options: debug enabled or written: %q", buf.String())
	}
}
