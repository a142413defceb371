package link

import "time"

// A TCP link's smux stream window is sized to the path it runs on. The
// window is what one stream may have in flight, and on a long link it, not
// TCP, sets the rate: data a stream has sent counts against its window
// from the moment it enters the sender's socket buffer until the receiver
// has read it, so the window must cover the round trip plus the time a
// lost segment holds up delivery (TCP delivers in order), plus what the
// sender's kernel queues. Measured on a 20 ms each way, 1% loss link with
// BBR (lab, docs/benchmarks.md): a 1 MiB window carried 52-67 Mbit/s while
// plain TCP carried 219-268; 4 MiB carried 229, 5 MiB 261, 8 MiB 280.
//
// The delay is measured (the kernel's smoothed RTT of the link's own TCP
// connection once the handshake has crossed it); the rate is the one the
// link should be able to reach, WindowRate. The floor is StreamBuffer (what
// every link had before), the ceiling MaxStreamWindow, which the roles
// derive from their memory limit: a receiver may have to hold a window per
// stream whose local reader is slower than the link.

// DefaultWindowRate is the rate a link's stream window is sized for:
// 1 Gbit/s, more than a router's uplink, so the window never caps a real
// link below its capacity.
const DefaultWindowRate = 1e9

// DefaultMaxStreamWindow bounds a path-sized stream window when no memory
// limit says otherwise.
const DefaultMaxStreamWindow = 16 << 20

// windowForRTT returns the stream window for a path with round-trip time
// rtt: rtt × WindowRate, at least StreamBuffer, at most MaxStreamWindow.
// An unknown RTT (zero) gives the floor.
func (t Tuning) windowForRTT(rtt time.Duration) int {
	rate := t.WindowRate
	if rate <= 0 {
		rate = DefaultWindowRate
	}
	ceiling := t.MaxStreamWindow
	if ceiling <= 0 {
		ceiling = DefaultMaxStreamWindow
	}
	w := int(rtt.Seconds() * rate / 8)
	return max(min(w, ceiling), t.StreamBuffer)
}

// ForRTT returns t with its stream window sized to a path of round-trip
// time rtt (see windowForRTT). The stall guard's slots stay computed from
// the floor (StallSlots on the caller's Tuning), so a long link holds at
// most as many stalled streams as a short one.
func (t Tuning) ForRTT(rtt time.Duration) Tuning {
	t.StreamBuffer = t.windowForRTT(rtt)
	return t
}

// CapWindow lowers MaxStreamWindow to an eighth of a memory limit (bytes;
// 0 = none): the stall guard lets several streams sit on full windows, and
// a few busy streams may each hold one.
func (t *Tuning) CapWindow(memoryLimit int64) {
	if memoryLimit <= 0 {
		return
	}
	limit := int(min(memoryLimit/8, int64(DefaultMaxStreamWindow)))
	if t.MaxStreamWindow <= 0 || limit < t.MaxStreamWindow {
		t.MaxStreamWindow = max(limit, t.StreamBuffer)
	}
}
