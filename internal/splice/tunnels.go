package splice

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

// Stream is a tunneled smux stream as Tunnels needs it. Its ID is the same
// at both ends of the link.
type Stream interface {
	Conn
	CloseWrite() error
	SetDeadline(time.Time) error
	ID() uint32
}

// Stats counts what Tunnels did; one Stats serves every link of a process.
type Stats struct {
	ResetSent     atomic.Uint64 // Reset messages sent to the peer
	ResetReceived atomic.Uint64 // Reset messages received from the peer
	StalledReset  atomic.Uint64 // streams reset by the Guard
}

const (
	// resetLinger bounds how long an end that sent Reset waits for the
	// peer's answer (its FIN) before closing the stream anyway: the link
	// may be dying, or the Reset may have been lost with it.
	resetLinger = 5 * time.Second
	// earlyResets is how many Resets for streams not (yet) tracked are
	// remembered. smux hands a new stream to AcceptStream before the
	// control stream's reader sees a Reset the relay sent right after
	// opening it; the agent tracks the stream only once it has read the
	// header and dialed. A few per concurrent stream opening is plenty.
	earlyResets = 256
)

// Tunnels is one link's registry of live tunneled streams, by stream ID,
// so that a Reset from the peer aborts the right one, plus the link's
// stall Guard.
type Tunnels struct {
	guard    *Guard
	stats    *Stats
	send     func(protocol.Reset) error // writes on the control stream
	arrivals atomic.Pointer[Arrivals]   // the link's, once known (SetArrivals)

	mu    sync.Mutex // guards live, early, next
	live  map[uint32]func()
	early [earlyResets]uint32 // ring; stream IDs are never 0 nor reused
	next  int

	wg sync.WaitGroup // aborts started by Reset; see Wait
}

// NewTunnels returns the registry of one link. send writes a control
// message to the peer.
func NewTunnels(g *Guard, stats *Stats, send func(protocol.Reset) error) *Tunnels {
	return &Tunnels{guard: g, stats: stats, send: send, live: map[uint32]func(){}}
}

// Splice joins a local connection (a public client on the relay, a local
// service on the agent) with its tunneled stream, like Start: it returns at
// once, the copies run in goroutines of wg, and done (if not nil) gets the
// Result when both have ended. An abort at this end is sent to the peer as
// Reset; a Reset from the peer aborts this end: the local connection gets
// an RST, the stream is closed.
//
// read is how many bytes the caller took from st before (a header): the
// stream's copy may give up its goroutine while idle only if it knows
// what it has read of everything the stream received (park.go).
func (t *Tunnels) Splice(local Conn, st Stream, read int64, wg *sync.WaitGroup, done func(Result)) {
	ts := &tunneled{Stream: st}
	var untrack, unwatch func()
	j := newJoin(local, ts, t.guard, wg, func(res Result) {
		if unwatch != nil {
			unwatch()
		}
		if res.Aborted() {
			why := protocol.ResetAborted
			if errors.Is(res.Err, ErrStalled) {
				why = protocol.ResetStalled
				t.stats.StalledReset.Add(1)
			}
			if ts.byPeer.Load() {
				st.Close()
			} else {
				t.Refuse(st, why)
			}
		}
		untrack()
		if done != nil {
			done(res)
		}
	})
	if a := t.arrivals.Load(); a != nil {
		if _, ok := st.(io.WriterTo); ok {
			h := &j.halves[0]
			h.consumed, h.more = read, make(chan struct{}, 1)
			h.received, unwatch = a.Watch(st.ID(), h.arrived)
		}
	}
	untrack = t.Track(st.ID(), func() {
		ts.byPeer.Store(true)
		stop(local)
		st.Close() // wakes a writer blocked on the stream's window
		j.resumeParked()
	})
	j.start()
}

// SetArrivals lets the copies of this link's streams park while idle
// (park.go): a is the Arrivals whose Wrap the link's smux reads through.
// Streams spliced before keep their goroutines.
func (t *Tunnels) SetArrivals(a *Arrivals) { t.arrivals.Store(a) }

// Refuse aborts a stream at this end: it tells the peer (Reset), waits
// for the peer to close its side and closes the stream. The stream's own
// FIN goes out only after that answer, so the peer cannot take it for a
// clean end of stream (and FIN its client) before the Reset arrives.
func (t *Tunnels) Refuse(st Stream, why protocol.ResetReason) {
	defer st.Close()
	if t.send(protocol.Reset{Stream: st.ID(), Reason: why}) != nil {
		return // the link is gone: the peer's streams die with it
	}
	t.stats.ResetSent.Add(1)
	st.SetDeadline(time.Now().Add(resetLinger))
	buf := make([]byte, 512)
	for {
		if _, err := st.Read(buf); err != nil {
			return
		}
	}
}

// Track registers a stream whose abort on the peer's Reset is abort (Splice
// does this itself; UDP flows call it directly). untrack must be called
// when the stream ends.
func (t *Tunnels) Track(id uint32, abort func()) (untrack func()) {
	t.mu.Lock()
	for i, e := range t.early {
		if e == id {
			t.early[i] = 0
			t.mu.Unlock()
			abort()
			return func() {}
		}
	}
	t.live[id] = abort
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		delete(t.live, id)
		t.mu.Unlock()
	}
}

// Reset aborts stream id on the peer's word. The abort runs in its own
// goroutine: closing a stream writes a frame, which must not hold up the
// control stream's reader.
func (t *Tunnels) Reset(id uint32) {
	t.stats.ResetReceived.Add(1)
	t.mu.Lock()
	abort, ok := t.live[id]
	if ok {
		delete(t.live, id)
	} else {
		t.early[t.next] = id
		t.next = (t.next + 1) % earlyResets
	}
	t.mu.Unlock()
	if ok {
		t.wg.Go(abort)
	}
}

// LinkDown aborts every tracked stream: the link carrying them died, so
// each local connection gets an RST at once, whatever its two copies were
// blocked on (a write to a client that stopped reading, a read from one
// that sends nothing: neither would see the stream's error). The owner
// calls it when the link ends, then Wait.
func (t *Tunnels) LinkDown() {
	t.mu.Lock()
	live := t.live
	t.live = map[uint32]func(){}
	t.mu.Unlock()
	for _, abort := range live {
		t.wg.Go(abort)
	}
}

// Len reports how many streams are tracked.
func (t *Tunnels) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.live)
}

// Wait returns when the aborts started by Reset have finished; the link's
// owner calls it after closing the link.
func (t *Tunnels) Wait() { t.wg.Wait() }

// tunneled is the stream side of a Splice: when the join aborts, its
// reads and writes are woken but the stream stays open until Refuse (or
// the peer's Reset) closes it.
type tunneled struct {
	Stream
	byPeer atomic.Bool // the abort came from the peer's Reset
}

// closed reports whether the stream was closed at this end (smux streams
// say so; others are taken as open).
func (s *tunneled) closed() bool {
	c, ok := s.Stream.(interface{ GetDieCh() <-chan struct{} })
	if !ok {
		return false
	}
	select {
	case <-c.GetDieCh():
		return true
	default:
		return false
	}
}

func (s *tunneled) Abort() { wake(s.Stream) }
