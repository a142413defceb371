package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
)

// syslogSink sends each log line as one datagram to the local syslog
// socket with the line's own priority. Under procd a service's stderr is
// logged at error level whatever it says ("agent up" would read as
// daemon.err in logread); written to /dev/log (logd on OpenWrt), info lines
// are daemon.info and warnings daemon.warn. A line the socket refuses
// (logd restarting) is retried once on a new connection, then written to
// the fallback (stderr), so nothing is lost silently.
type syslogSink struct {
	mu       sync.Mutex
	path     string
	tag      string
	pid      int
	conn     net.Conn
	pri      int // of the record being written (set by levelHandler under mu)
	fallback io.Writer
}

// facilityDaemon is LOG_DAEMON (3) shifted into the priority's facility bits.
const facilityDaemon = 3 << 3

// syslogSeverity maps slog levels to syslog severities.
func syslogSeverity(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // err
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // info
	}
	return 7 // debug
}

// Write sends one formatted record; the caller holds mu.
func (s *syslogSink) Write(p []byte) (int, error) {
	line := p
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	msg := fmt.Appendf(nil, "<%d>%s[%d]: %s", facilityDaemon|s.pri, s.tag, s.pid, line)
	for try := 0; try < 2; try++ {
		if s.conn == nil {
			c, err := net.Dial("unixgram", s.path)
			if err != nil {
				break
			}
			s.conn = c
		}
		if _, err := s.conn.Write(msg); err == nil {
			return len(p), nil
		}
		s.conn.Close()
		s.conn = nil
	}
	return s.fallback.Write(p)
}

// levelHandler sets the sink's priority from each record before its
// inner handler formats the record into the sink.
type levelHandler struct {
	slog.Handler
	sink *syslogSink
}

func (h levelHandler) Handle(ctx context.Context, r slog.Record) error {
	h.sink.mu.Lock()
	defer h.sink.mu.Unlock()
	h.sink.pri = syslogSeverity(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(as), h.sink}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(name), h.sink}
}

// newSyslogLogger is newLogger writing to the syslog socket at path
// (without the time, which syslog adds); lines it cannot deliver go to
// fallback.
func newSyslogLogger(path string, fallback io.Writer, level slog.Level, format string) *slog.Logger {
	sink := &syslogSink{path: path, tag: "pinhole", pid: os.Getpid(), fallback: fallback}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	var inner slog.Handler = slog.NewTextHandler(sink, opts)
	if format == "json" {
		inner = slog.NewJSONHandler(sink, opts)
	}
	return slog.New(levelHandler{inner, sink})
}
