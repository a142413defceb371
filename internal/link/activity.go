package link

import (
	"sync/atomic"
	"time"
)

// activity tells a link's owner whether the link has been carrying
// traffic of its own, so that a keepalive can be skipped: any datagram
// the agent sends refreshes its NAT mapping (RFC 4787 REQ-6), so a
// heartbeat is needed only after a quiet interval.
//
// The owner's keepalive exchange itself must not count, or it would
// postpone the next one forever: a Ping is one KCP segment, the relay's
// Pong another, and KCP sends an ACK for the Pong (and retransmits the
// Ping if it is lost). The owner marks the window of that exchange
// (Keepalive) and sends inside it are not traffic. Data sent inside the
// window is not counted either, which errs on the side of one more Ping.
// KCP sends nothing on an idle conversation (no keepalive of its own;
// window probes only toward a full receive window), and smux's keepalive
// is off (tuning.go), so outside the windows every send is traffic.
type activity struct {
	sent      atomic.Uint64 // datagrams (UDP) or records (TCP) sent
	keepalive atomic.Int64  // unix nanos: sends before this belong to the owner's keepalive
	traffic   atomic.Int64  // unix nanos of the last send outside a keepalive window
}

// wrote records one datagram or record sent now.
func (a *activity) wrote() { a.wroteN(1) }

// wroteN records n datagrams sent now (a flush's, with one clock read).
func (a *activity) wroteN(n uint64) {
	a.sent.Add(n)
	if now := nowNano(); now >= a.keepalive.Load() {
		a.traffic.Store(now)
	}
}

// Keepalive marks what the link sends from now until until as the
// owner's keepalive exchange. A later call replaces the window.
func (l *Link) Keepalive(until time.Time) { l.act.keepalive.Store(until.UnixNano()) }

// LastTraffic returns when the link last sent something outside a
// keepalive window (zero time: never).
func (l *Link) LastTraffic() time.Time {
	if n := l.act.traffic.Load(); n != 0 {
		return unixNano(n)
	}
	return time.Time{}
}

// Sent returns how many datagrams (UDP) or records (TCP) the link sent.
func (l *Link) Sent() uint64 { return l.act.sent.Load() }

// unixNano turns stored unix nanoseconds back into a time. It is kept out
// of line: time.Unix inlined costs about 600 bytes of mipsle code at each
// of the six accessors that use it, and none of them is on a hot path.
//
//go:noinline
func unixNano(n int64) time.Time { return time.Unix(0, n) }

// nowNano is time.Now().UnixNano(), out of line for the same reason (five
// call sites; a call costs a few nanoseconds per packet).
//
//go:noinline
func nowNano() int64 { return time.Now().UnixNano() }
