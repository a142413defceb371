// Package bench measures the tunnel against baselines taken in the same
// run on the same machine: direct TCP on loopback (the physical ceiling), a
// plain Go TCP relay (what any userspace proxy costs), and raw kcp-go
// between two loopback sockets with the tunnel's tuning (the transport's
// own ceiling). Every figure is reported with b.ReportMetric as a number
// and as a ratio to its baseline; nothing here passes or fails on speed,
// because shared CI machines are too noisy for timed assertions.
//
// Run with `make bench`; docs/benchmarks.md records a run.
package bench
