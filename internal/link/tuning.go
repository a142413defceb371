package link

import (
	"math"
	"time"

	"github.com/xtaci/kcp-go/v5"
	"github.com/xtaci/smux"
)

// Tuning is the KCP and smux configuration of a link. Both ends should use
// the same values; the window sizes bound the memory a link can hold.
type Tuning struct {
	NoDelay, Interval, Resend, NoCongestion int // ikcp_nodelay parameters
	MTU                                     int // KCP packet size before sealing
	SendWindow, RecvWindow                  int // in packets
	DataShards, ParityShards                int // FEC (0, 0 = off)
	// StreamBuffer caps what one smux stream may have in flight (its
	// flow-control window). SessionBuffer is what the streams whose local
	// reader stalled may hold together: it sets the slots of the link's
	// stall guard (see StallSlots), not smux's session buffer.
	StreamBuffer, SessionBuffer int
	// A TCP link sizes its stream window to its path (window.go):
	// WindowRate (bits/s, 0 = DefaultWindowRate) times the measured round
	// trip, between StreamBuffer and MaxStreamWindow (0 =
	// DefaultMaxStreamWindow).
	WindowRate      float64
	MaxStreamWindow int
	// NoPark keeps a UDP link in the smux layout (control channel as the
	// first stream, smux always live), as builds before parking do: this
	// end neither offers nor accepts protocol.FlagParkable. For tests and
	// comparisons; FEC implies it.
	NoPark bool
	// ParkAfter is how long a data conversation must be idle before the
	// agent's end asks to park it (0: 10 s; link/park.go).
	ParkAfter time.Duration
}

// Parks reports whether this end offers the parked layout (park.go).
func (t Tuning) Parks() bool { return !t.NoPark && t.DataShards == 0 }

// Mode presets follow the ikcp_nodelay settings popularised by kcptun:
// normal keeps KCP's conservative timers; fast3 retransmits aggressively
// and ignores congestion control, which is what a tunnel over a lossy
// access link wants.
var modes = map[string][4]int{
	"normal": {0, 40, 2, 1},
	"fast":   {0, 30, 2, 1},
	"fast2":  {1, 20, 2, 1},
	"fast3":  {1, 10, 2, 1},
}

// DefaultTuning is fast3 with windows sized for a router. The KCP windows
// are floors: the driver sizes them to the path's rate × round trip once
// it is measured, never below one stream's window (pathwindow.go), so
// they matter on short paths (under ~8 ms), where the send window is what
// several streams together may keep in flight. 768 packets is under one
// stream's window (StreamBuffer, 1 MiB: 810 packets at mtu 1350), which
// is then the window: one stream never has more in flight, and more for
// several streams bought nothing on a short path but longer queues and
// window scans. With 1,024 eight streams through real processes moved
// 0.95-1.01x of one stream's rate (mean 0.98 in 14 alternating runs),
// with 810 1.00-1.05x (mean 1.03 in 17); one stream's own rate moved
// within the noise (docs/benchmarks.md, 2026-11-27). The receive window
// stays at 1,024: it costs memory only while a hole holds segments behind
// it.
func DefaultTuning() Tuning {
	t := Tuning{MTU: 1350, SendWindow: 768, RecvWindow: 1024,
		StreamBuffer: 1 << 20, SessionBuffer: 4 << 20}
	t.SetMode("fast3")
	return t
}

// OrDefault returns t, or DefaultTuning when t is the zero value, so a
// Config built in code without tuning works (zero windows and buffers
// would make kcp-go and smux refuse to start).
func (t Tuning) OrDefault() Tuning {
	if t == (Tuning{}) {
		return DefaultTuning()
	}
	return t
}

// SetMode applies a named preset and reports whether the name is known.
func (t *Tuning) SetMode(name string) bool {
	m, ok := modes[name]
	if ok {
		t.NoDelay, t.Interval, t.Resend, t.NoCongestion = m[0], m[1], m[2], m[3]
	}
	return ok
}

// kcpMTU is what KCP may put in one packet so the sealed datagram still fits
// the configured MTU.
func (t Tuning) kcpMTU() int {
	m := t.MTU - sealOverhead
	if m < 200 {
		m = 200
	}
	return m
}

// Apply configures a fresh KCP session (exported for the raw-KCP benchmark,
// which must use exactly the tunnel's settings).
func (t Tuning) Apply(s *kcp.UDPSession) {
	// Stream mode packs small writes into full segments (smux frames are
	// small); kcp-go marks the setter deprecated but keeps honouring it.
	s.SetStreamMode(true) //nolint:staticcheck // SA1019, see above
	s.SetWriteDelay(false)
	s.SetNoDelay(t.NoDelay, t.Interval, t.Resend, t.NoCongestion)
	s.SetWindowSize(t.SendWindow, t.RecvWindow)
	s.SetMtu(t.kcpMTU())
	s.SetACKNoDelay(true)
}

// Smux returns the smux configuration. Version 2 gives per-stream flow
// control, so one slow local service cannot stall every other stream.
// smux's own keepalive is off: the control stream's heartbeats judge
// liveness, and their interval is tuned to the NAT, not to smux's default.
func (t Tuning) Smux() *smux.Config {
	c := smux.DefaultConfig()
	c.Version = 2
	c.KeepAliveDisabled = true
	c.KeepAliveInterval = 10 * time.Second
	c.KeepAliveTimeout = 30 * time.Second
	c.MaxFrameSize = 32768
	c.MaxStreamBuffer = t.StreamBuffer
	// smux's session buffer is a token bucket shared by every stream; when
	// it runs dry, its receive loop stops reading the link, so a few
	// streams whose readers stalled (each holding a full window) froze
	// every other stream and the control stream with it. Per-stream flow
	// control already bounds each stream, and the stall guard
	// (internal/splice.Guard, StallSlots) bounds how many may sit full, so
	// the bucket is made large enough never to run dry.
	c.MaxReceiveBuffer = sessionBucket
	return c
}

// sessionBucket is smux's MaxReceiveBuffer: half of its maximum
// (math.MaxInt32, smux.VerifyConfig), so the bucket's int32 arithmetic
// cannot overflow.
const sessionBucket = math.MaxInt32 / 2

// StallSlots is how many streams of a link may wait on a stalled local
// reader at once: SessionBuffer / StreamBuffer, at least 1.
func (t Tuning) StallSlots() int {
	if t.StreamBuffer <= 0 {
		return 1
	}
	return max(t.SessionBuffer/t.StreamBuffer, 1)
}
