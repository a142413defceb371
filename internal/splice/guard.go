package splice

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// ErrStalled is the error of a write the Guard gave up on: the reader made
// no progress for StallLimit, or it stalled while every slot was taken.
var ErrStalled = errors.New("reader stalled")

// Stall policy. A stream whose local reader stops reading keeps up to one
// smux stream window (link.Tuning.StreamBuffer) in the receiving end's
// memory; the Guard lets only a few such streams per link wait, and resets
// the rest.
const (
	// StallAfter is how long a write to a local connection may move no
	// byte before its stream counts as stalled. A reader that is merely
	// slow frees socket buffer space within a few of its round trips; 200
	// ms is 20 wide-area RTTs and well under a second, the time within
	// which an abandoned connection must be released.
	StallAfter = 200 * time.Millisecond
	// StallLimit is how long a stalled stream holding a slot may go
	// without progress before it is reset: a client paused for minutes
	// (a suspended laptop, a stopped `less`) has been given up on.
	StallLimit = 2 * time.Minute
)

// Guard bounds what the stalled streams of one link may hold: each write to
// a local connection must make progress within After; a writer that made
// none takes one of the Guard's slots and may then wait up to Limit; if no
// slot is free, or Limit passes, the write fails with ErrStalled and its
// stream is reset. The slot is returned as soon as the write progresses or
// ends. With slots = SessionBuffer / StreamBuffer, stalled streams hold at
// most about SessionBuffer while every other stream and the control stream
// keep moving.
type Guard struct {
	After, Limit time.Duration

	mu   sync.Mutex // guards free
	free int
}

// NewGuard returns a Guard with the given number of slots (at least 1) and
// the default policy.
func NewGuard(slots int) *Guard {
	return &Guard{After: StallAfter, Limit: StallLimit, free: max(slots, 1)}
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
	total := 0
	for len(b) > 0 {
		d := g.After
		if held {
			d = g.Limit
		}
		c.SetWriteDeadline(time.Now().Add(d))
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
		case held:
			return total, ErrStalled
		case !g.acquire():
			return total, ErrStalled
		default:
			held = true
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
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
