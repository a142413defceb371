package splice

import (
	"errors"
	"os"
	"sync"
	"time"
)

// ErrStalled is the error of a write the Guard gave up on: the reader made
// no progress for StallLimit, or for StallGrace while every slot was taken.
var ErrStalled = errors.New("reader stalled")

// Stall policy. A stream whose local reader stops reading keeps up to one
// smux stream window (link.Tuning.StreamBuffer) in the receiving end's
// memory; the Guard lets only a few such streams per link wait long, and
// resets the rest.
const (
	// StallAfter is how long a write to a local connection may move no
	// byte before its stream counts as stalled and needs a slot. 200 ms is
	// 20 wide-area RTTs: a reader keeping up frees socket buffer space
	// well within it.
	StallAfter = 200 * time.Millisecond
	// StallGrace is how long a stalled stream that found every slot taken
	// may still go without progress before it is reset. A slow reader is
	// not a dead one: the kernel wakes a blocked writer only when half the
	// socket buffer has drained, so a client reading at 32-100 KB/s leaves
	// its writer without progress for more than StallAfter 55-80 % of the
	// time (measured on loopback); resetting at once would cut such
	// clients whenever a few others were slow too. 2 s keeps a link's
	// stalled memory over its budget only briefly.
	StallGrace = 2 * time.Second
	// StallLimit is how long a stalled stream holding a slot may go
	// without progress before it is reset: a client paused for minutes
	// (a suspended laptop, a stopped pager) has been given up on.
	StallLimit = 2 * time.Minute
)

// Guard bounds what the stalled streams of one link may hold. Each write
// to a local connection must make progress within After; a writer that
// made none takes one of the Guard's slots and may then wait up to Limit.
// If no slot is free it keeps trying for one, and fails with ErrStalled
// (its stream is reset) once it has gone Grace without progress. A slot is
// returned as soon as the write progresses or ends. With slots =
// SessionBuffer / StreamBuffer, streams stalled longer than Grace hold at
// most about SessionBuffer, while every other stream and the control
// stream keep moving.
type Guard struct {
	After, Grace, Limit time.Duration

	mu   sync.Mutex // guards free
	free int
}

// NewGuard returns a Guard with the given number of slots (at least 1) and
// the default policy.
func NewGuard(slots int) *Guard {
	return &Guard{After: StallAfter, Grace: StallGrace, Limit: StallLimit, free: max(slots, 1)}
}

// deadlineWriter is what the Guard needs of a local connection.
type deadlineWriter interface {
	Write([]byte) (int, error)
	SetWriteDeadline(time.Time) error
}

// Write writes all of b to c under the stall policy. A deadline that
// expires after a partial write is not a failure: the remainder is retried,
// so no byte is lost or repeated.
func (g *Guard) Write(c deadlineWriter, b []byte) (int, error) {
	held := false
	defer func() {
		if held {
			g.release()
		}
	}()
	var since time.Time // start of zero progress without a slot
	total := 0
	for len(b) > 0 {
		d := g.After
		if held {
			d = g.Limit
		}
		start := time.Now()
		c.SetWriteDeadline(start.Add(d))
		n, err := c.Write(b)
		total += n
		b = b[n:]
		if err == nil {
			break
		}
		if !isTimeout(err) {
			return total, err
		}
		switch {
		case n > 0: // slow, not stalled: give the slot back to others
			if held {
				g.release()
				held = false
			}
			since = time.Time{}
		case held:
			return total, ErrStalled
		case g.acquire():
			held = true
		default:
			if since.IsZero() {
				since = start
			}
			if time.Since(since) >= g.Grace {
				return total, ErrStalled
			}
		}
	}
	return total, nil
}

// Free reports how many slots are free.
func (g *Guard) Free() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.free
}

func (g *Guard) acquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.free == 0 {
		return false
	}
	g.free--
	return true
}

func (g *Guard) release() {
	g.mu.Lock()
	g.free++
	g.mu.Unlock()
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || NetTimeout(err)
}
