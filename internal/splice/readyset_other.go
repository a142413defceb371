//go:build !linux

package splice

import (
	"sync/atomic"
	"syscall"
)

// readySet exists on Linux only (readyset_linux.go); elsewhere an idle
// copy from a socket keeps its goroutine, waiting in Go's poller.
type readySet struct{}

var theReadySet = func() *readySet { return nil }

func (*readySet) arm(syscall.RawConn, *atomic.Uint64, func()) error { return nil }

func (*readySet) forget(uint64) {}
