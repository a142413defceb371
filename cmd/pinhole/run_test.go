package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/slog"
)

// TestNewLoggerFormats: `log: {format: json}` writes one JSON object per
// line with log/slog's keys; the default is key=value text; the level
// filters.
func TestNewLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf, slog.LevelInfo, "json").With("agent", "r1").Info("relay up", "rtt", 1500*time.Microsecond, "err", nil)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("json log line %q: %v", buf.String(), err)
	}
	if line["level"] != "INFO" || line["msg"] != "relay up" || line["agent"] != "r1" || line["rtt"] != 1.5e6 || line["err"] != nil {
		t.Errorf("json line: %s", buf.String())
	}
	if _, err := time.Parse(time.RFC3339Nano, line["time"].(string)); err != nil {
		t.Errorf("json time: %v", err)
	}
	buf.Reset()
	l := newLogger(&buf, slog.LevelWarn, "text")
	l.Info("hidden")
	l.Warn("relay silent, reconnecting", "relay", "vps:7700")
	if out := buf.String(); !strings.HasPrefix(out, "time=") || !strings.HasSuffix(out, ` level=WARN msg="relay silent, reconnecting" relay=vps:7700`+"\n") {
		t.Errorf("text line: %q", out)
	}
}
