package confkit

import (
	"io"
	"log/slog"
)

// Log is the log section both roles share. On OpenWrt procd hands stderr
// to logd, where text reads best; json suits a VPS shipping logs elsewhere.
type Log struct {
	Level  slog.Level // debug, info (default), warn or error
	Format LogFormat  // text (default) or json
}

// LogFormat is the encoding of log lines.
type LogFormat uint8

const (
	LogText LogFormat = iota
	LogJSON
)

var logFormatNames = []string{LogText: "text", LogJSON: "json"}

func (f LogFormat) String() string                { return enumString(logFormatNames, f) }
func (f LogFormat) MarshalText() ([]byte, error)  { return []byte(f.String()), nil }
func (f *LogFormat) UnmarshalText(b []byte) error { return enumParse(logFormatNames, f, b) }

// levels are the four slog levels a config may name, lowercase as
// operators type them (slog's own parser also takes "INFO+2", which no
// config needs).
var levels = []struct {
	name  string
	level slog.Level
}{{"debug", slog.LevelDebug}, {"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"error", slog.LevelError}}

// ParseLevel reads debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	names := make([]string, len(levels))
	for i, l := range levels {
		names[i] = l.name
	}
	i, err := OneOf(s, names...)
	if err != nil {
		return slog.LevelInfo, err
	}
	return levels[i].level, nil
}

// DefaultLog is info in text.
func DefaultLog() Log { return Log{Level: slog.LevelInfo, Format: LogText} }

// Log reads the optional "log" section.
func (m *Map) Log() Log {
	l := DefaultLog()
	sec := m.Sub("log")
	l.Level = check(sec, "level", l.Level, ParseLevel)
	sec.Enum("format", &l.Format)
	return l
}

// NewLogger returns a logger writing to w in the configured level and
// format.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.Format == LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
