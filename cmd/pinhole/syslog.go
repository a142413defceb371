package main

import (
	"fmt"
	"github.com/pinhole/pinhole/internal/slog"
	"io"
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
	pri      int // of the record being written (set by WriteLevel under mu)
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

// WriteLevel sends one formatted line with its level's priority (the
// handler calls it under its own lock, one line at a time).
func (s *syslogSink) WriteLevel(level slog.Level, p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pri = syslogSeverity(level)
	return s.write(p)
}

// Write sends a line at info level (the handler uses WriteLevel).
func (s *syslogSink) Write(p []byte) (int, error) { return s.WriteLevel(slog.LevelInfo, p) }

// write sends one formatted record; the caller holds mu.
func (s *syslogSink) write(p []byte) (int, error) {
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

// newSyslogLogger is newLogger writing to the syslog socket at path
// (without the time, which syslog adds); lines it cannot deliver go to
// fallback.
func newSyslogLogger(path string, fallback io.Writer, level slog.Level, format string) *slog.Logger {
	sink := &syslogSink{path: path, tag: "pinhole", pid: os.Getpid(), fallback: fallback}
	opts := &slog.HandlerOptions{Level: level, OmitTime: true}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(sink, opts))
	}
	return slog.New(slog.NewTextHandler(sink, opts))
}
