package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pinhole/pinhole/internal/memlimit"
	"github.com/pinhole/pinhole/internal/slog"
)

// newLogger builds the process logger. procd sends stderr to logd, so the
// text format there is what `logread -e pinhole` shows.
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// setMemoryLimit applies the configured soft limit unless the operator set
// GOMEMLIMIT, which wins. The soft limit makes the GC work harder as the
// heap nears it instead of letting a 64 MB router reach the OOM killer;
// internal/memlimit keeps it from making the GC run back to back when the
// live heap itself needs more.
func setMemoryLimit(limit int64, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" || limit <= 0 {
		return
	}
	memlimit.Start(limit)
	log.Debug("soft memory limit set", "bytes", limit)
}

// serveSignals runs until SIGTERM or SIGINT (then cancels ctx) and calls
// reload on every SIGHUP. It returns the context that run should use.
func serveSignals(reload func()) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		defer signal.Stop(sigs)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				if s == syscall.SIGHUP {
					reload()
					continue
				}
				cancel()
				return
			}
		}
	}()
	return ctx, cancel
}
