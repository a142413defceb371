package main

import (
	"sync"
	"time"

	"github.com/pinhole/pinhole/internal/pagetrim"
	"github.com/pinhole/pinhole/internal/slog"
)

// The agent drops the binary's pages from its resident set
// (internal/pagetrim) trimAfter after it starts, when start-up is over
// (NAT discovery and the relay handshake included, unless the network is
// not up yet), and every trimEvery after that: rare work maps the code
// and tables it runs and nothing else would unmap them (the NAT lifetime
// measurement's end, five minutes in, mapped 1 MiB back). What an idle
// agent runs in the meantime faults back in at once; a trim costs a read
// of /proc/self/maps, one madvise per mapping and a few dozen minor
// faults (64 KiB each) after it.
const (
	trimAfter = 30 * time.Second
	trimEvery = time.Minute
)

// trimPages starts the trims and returns the function that stops them.
func trimPages(log *slog.Logger) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	trim := func() {
		n, err := pagetrim.Binary()
		log.Debug("dropped the binary's pages", "mapped_bytes", n, "err", err)
		mu.Lock()
		if !stopped {
			t.Reset(trimEvery)
		}
		mu.Unlock()
	}
	mu.Lock()
	t = time.AfterFunc(trimAfter, trim)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}
