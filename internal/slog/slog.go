// Package slog is the part of log/slog pinhole uses, with the same names
// (Logger, Level, New, NewTextHandler, NewJSONHandler, HandlerOptions) and
// byte for byte the same text and JSON lines, so a file switches by its
// import line alone and STYLE.md's "pass in a *slog.Logger" still reads
// true.
//
// Why not log/slog: its handlers share one formatter whose JSON branch
// marshals "any" values with encoding/json, and its init installs a
// default handler built on that formatter, so linking log/slog at all
// links encoding/json's reflection encoder. This package and
// internal/jsonw in their place took 234,774 bytes off the mipsle binary.
//
// What it covers is what pinhole logs: alternating key/value arguments
// (a key that is not a string is logged as !BADKEY, as log/slog does),
// With, the four levels, and values of kind string, integer, float, bool,
// time.Duration, time.Time, error, encoding.TextMarshaler, nil, and any
// other value through fmt (text) or as encoding/json would write a scalar,
// a *net.UDPAddr or a *net.TCPAddr (JSON). No groups, no source, no
// ReplaceAttr. A new kind of value that log/slog's JSON handler writes as
// an object needs a case in appendJSONAny; slog_test.go compares both
// handlers with log/slog's for every kind listed here.
package slog

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Level is a log level, numbered as log/slog's.
type Level int

const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// String is the level's name as it appears in a line (INFO, WARN+2).
func (l Level) String() string {
	name := func(base string, off Level) string {
		if off == 0 {
			return base
		}
		return fmt.Sprintf("%s%+d", base, off)
	}
	switch {
	case l < LevelInfo:
		return name("DEBUG", l-LevelDebug)
	case l < LevelWarn:
		return name("INFO", l-LevelInfo)
	case l < LevelError:
		return name("WARN", l-LevelWarn)
	}
	return name("ERROR", l-LevelError)
}

// HandlerOptions sets the minimum level (LevelInfo when nil), and whether
// lines go without their time (the syslog daemon adds its own).
type HandlerOptions struct {
	Level    Level
	OmitTime bool
}

// LevelWriter is a writer that is told each line's level (a syslog
// socket gives each line its priority); a Handler writing to one calls
// WriteLevel instead of Write.
type LevelWriter interface {
	WriteLevel(level Level, line []byte) (int, error)
}

// Handler formats records as text (key=value) or JSON lines and writes
// each with one Write call.
type Handler struct {
	w      io.Writer
	mu     *sync.Mutex // shared by the handlers With derives: one line at a time
	json   bool
	level  Level
	notime bool
	attrs  []byte // preformatted With attributes, each with its leading separator
}

// NewTextHandler writes key=value lines as log/slog's TextHandler.
func NewTextHandler(w io.Writer, opts *HandlerOptions) *Handler { return newHandler(w, opts, false) }

// NewJSONHandler writes JSON lines as log/slog's JSONHandler.
func NewJSONHandler(w io.Writer, opts *HandlerOptions) *Handler { return newHandler(w, opts, true) }

func newHandler(w io.Writer, opts *HandlerOptions, json bool) *Handler {
	h := &Handler{w: w, mu: new(sync.Mutex), json: json}
	if opts != nil {
		h.level, h.notime = opts.Level, opts.OmitTime
	}
	return h
}

// Logger logs through a Handler.
type Logger struct{ h *Handler }

// New returns a Logger writing to h.
func New(h *Handler) *Logger { return &Logger{h: h} }

// With returns a Logger that adds args (key/value pairs) to every line.
func (l *Logger) With(args ...any) *Logger {
	if len(args) == 0 {
		return l
	}
	h := *l.h
	h.attrs = appendArgs(append([]byte(nil), l.h.attrs...), h.json, args)
	return &Logger{h: &h}
}

// Enabled reports whether a line at level would be written.
func (l *Logger) Enabled(_ context.Context, level Level) bool { return level >= l.h.level }

func (l *Logger) Debug(msg string, args ...any) { l.log(LevelDebug, msg, args) }
func (l *Logger) Info(msg string, args ...any)  { l.log(LevelInfo, msg, args) }
func (l *Logger) Warn(msg string, args ...any)  { l.log(LevelWarn, msg, args) }
func (l *Logger) Error(msg string, args ...any) { l.log(LevelError, msg, args) }

// Log logs at level.
func (l *Logger) Log(_ context.Context, level Level, msg string, args ...any) {
	l.log(level, msg, args)
}

func (l *Logger) log(level Level, msg string, args []any) {
	h := l.h
	if level < h.level {
		return
	}
	now := time.Now().Round(0)
	b := make([]byte, 0, 256)
	switch {
	case h.json && h.notime:
		b = append(b, `{"level":`...)
		b = appendJSONString(b, level.String())
		b = append(b, `,"msg":`...)
		b = appendJSONString(b, msg)
	case h.json:
		b = append(b, `{"time":`...)
		b = appendJSONTime(b, now)
		b = append(b, `,"level":`...)
		b = appendJSONString(b, level.String())
		b = append(b, `,"msg":`...)
		b = appendJSONString(b, msg)
	default:
		if !h.notime {
			b = append(b, "time="...)
			b = appendRFC3339Millis(b, now)
			b = append(b, ' ')
		}
		b = append(b, "level="...)
		b = appendTextString(b, level.String())
		b = append(b, " msg="...)
		b = appendTextString(b, msg)
	}
	b = append(b, h.attrs...)
	b = appendArgs(b, h.json, args)
	if h.json {
		b = append(b, '}')
	}
	b = append(b, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	if lw, ok := h.w.(LevelWriter); ok {
		lw.WriteLevel(level, b)
		return
	}
	h.w.Write(b)
}

// appendArgs appends the key/value pairs of args, each with its leading
// separator, pairing them as log/slog does.
func appendArgs(b []byte, json bool, args []any) []byte {
	for len(args) > 0 {
		key, ok := args[0].(string)
		var v any
		switch {
		case !ok:
			key, v, args = "!BADKEY", args[0], args[1:]
		case len(args) == 1:
			key, v, args = "!BADKEY", key, nil
		default:
			v, args = args[1], args[2:]
		}
		if key == "" && v == nil {
			continue // log/slog elides an empty attribute
		}
		if json {
			b = append(b, ',')
			b = appendJSONString(b, key)
			b = append(b, ':')
			b = appendValue(b, true, v)
		} else {
			b = append(b, ' ')
			b = appendTextString(b, key)
			b = append(b, '=')
			b = appendValue(b, false, v)
		}
	}
	return b
}
