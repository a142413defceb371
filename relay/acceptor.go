package relay

import (
	"net"
	"sync"
	"syscall"
)

// Accepting without a goroutine per port. Every exposed TCP port is a
// listener, and in Go a listener is served by a goroutine blocked in
// Accept: with ten thousand idle agents, ten thousand goroutines whose
// stacks (about 8 KiB each once a connection grew them) were a fifth of
// the relay's memory per agent. The acceptor watches all of them from one
// goroutine instead (Linux: an epoll set of the listeners' descriptors,
// itself waited on through Go's poller, so no thread blocks in it) and
// hands each accepted connection to its exposure's handler. Elsewhere it
// falls back to one goroutine per listener (acceptor_other.go).
//
// A handler runs on the acceptor's goroutine while it holds mu, and must
// only start the connection's own goroutine; remove takes mu, so once it
// returns no handler of that listener runs again, which lets an exposure
// close without waiting for anything.

// acceptFunc takes one accepted connection.
type acceptFunc func(net.Conn)

// acceptEntry is one watched listener.
type acceptEntry struct {
	raw    syscall.RawConn // the listener's descriptor (epoll only)
	handle acceptFunc
}

type acceptorBase struct {
	mu      sync.Mutex
	entries map[int32]*acceptEntry
	next    int32
}

// register files e under a fresh id; a.mu is held.
func (a *acceptorBase) registerLocked(e *acceptEntry) int32 {
	if a.entries == nil {
		a.entries = map[int32]*acceptEntry{}
	}
	for {
		a.next++
		if a.next <= 0 {
			a.next = 1 // 0 is never an entry's id
		}
		if a.entries[a.next] == nil {
			a.entries[a.next] = e
			return a.next
		}
	}
}
