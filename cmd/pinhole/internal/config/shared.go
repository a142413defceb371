package config

import (
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
)

// Log is the logging section both roles share.
type Log struct {
	Level  slog.Level
	Format string // text or json
}

func (m *mapping) logSection() Log {
	l := Log{Level: slog.LevelInfo, Format: "text"}
	sec := newMapping(m.c, m.get("log"), "log")
	switch sec.enum("level", "info", "debug", "info", "warn", "error") {
	case "debug":
		l.Level = slog.LevelDebug
	case "warn":
		l.Level = slog.LevelWarn
	case "error":
		l.Level = slog.LevelError
	}
	l.Format = sec.enum("format", "text", "text", "json")
	sec.done()
	return l
}

// kcpSection reads the optional KCP tuning. Both ends of a link should use
// the same values; the defaults suit a router.
func (m *mapping) kcpSection() link.Tuning {
	t := link.DefaultTuning()
	n := m.get("kcp")
	sec := newMapping(m.c, n, "kcp")
	t.SetMode(sec.enum("mode", "fast3", "normal", "fast", "fast2", "fast3"))
	t.MTU = sec.integer("mtu", t.MTU, 576, 1500)
	t.SendWindow = sec.integer("send_window", t.SendWindow, 32, 32768)
	t.RecvWindow = sec.integer("recv_window", t.RecvWindow, 32, 32768)
	t.DataShards = sec.integer("data_shards", 0, 0, 64)
	t.ParityShards = sec.integer("parity_shards", 0, 0, 64)
	if (t.DataShards == 0) != (t.ParityShards == 0) {
		m.c.add(n, "kcp", "data_shards and parity_shards must both be 0 (FEC off) or both set")
	}
	sec.done()
	return t
}
