package relay

import (
	"net/netip"
	"sync"
	"time"

	"github.com/pinhole/pinhole/internal/slog"
)

// dropLog logs why handshakes are dropped or answered with a cookie, once
// per source IP and reason in every dropLogEvery: an operator learns that
// (and why) an agent is kept out, while a flood leaves a few lines in a
// router-sized syslog rather than one per packet. The counters in Stats
// count every drop. mu guards seen.
type dropLog struct {
	lg   *slog.Logger
	mu   sync.Mutex
	seen map[dropKey]time.Time
}

type dropKey struct {
	addr   netip.Addr
	reason string
}

const (
	dropLogEvery = 5 * time.Minute
	// dropLogMax bounds the table under a spoofed-source flood; past it,
	// new sources are not logged until the next sweep.
	dropLogMax = 4096
)

func (d *dropLog) log(from netip.AddrPort, reason string, args ...any) {
	if d.first(from, reason) {
		d.lg.Info("handshake dropped: "+reason, append([]any{"addr", from}, args...)...)
	}
}

// logWarn is log at warning level, for reasons an operator must act on.
func (d *dropLog) logWarn(from netip.AddrPort, reason string, args ...any) {
	if d.first(from, reason) {
		d.lg.Warn("handshake refused: "+reason, append([]any{"addr", from}, args...)...)
	}
}

func (d *dropLog) first(from netip.AddrPort, reason string) bool {
	now := time.Now()
	k := dropKey{from.Addr(), reason}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[dropKey]time.Time{}
	}
	if t, ok := d.seen[k]; ok && now.Sub(t) < dropLogEvery {
		return false
	}
	if len(d.seen) >= dropLogMax {
		return false
	}
	d.seen[k] = now
	return true
}

// sweep forgets entries old enough to be logged again.
func (d *dropLog) sweep(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, t := range d.seen {
		if now.Sub(t) >= dropLogEvery {
			delete(d.seen, k)
		}
	}
}
