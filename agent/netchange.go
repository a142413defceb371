package agent

import (
	"context"
	"fmt"
	"github.com/pinhole/pinhole/internal/slog"
	"sync"
	"time"

	"github.com/pinhole/pinhole/agent/internal/relaylink"
	"github.com/pinhole/pinhole/protocol"
)

// netChangeEvery is the least time between two network-change link
// checks: an interface flapping ten times a second costs one check (and at
// most one re-dial) a second, and the last change of a burst is never lost
// (it runs when the second ends).
const netChangeEvery = time.Second

// NetworkChanged tells the agent that its uplink changed: the WAN came
// back (a PPPoE redial, a DHCP lease with a new address, a modem reset)
// and the NAT mappings the link used are likely gone. Without it the
// agent notices only when heartbeats go unanswered, and heartbeats tuned
// to a long mapping lifetime are minutes apart. At once, the link is
// pinged: if the relay answers within answerWait (at least a second) the
// link is kept, tunneled connections and all (the relay follows an agent
// to a new address, and the Pong's new observed address starts NAT
// discovery again); if not, it is re-dialed and the new link measures
// the NAT afresh. A dial or backoff wait in progress is cut short.
// cmd/pinhole calls it on SIGUSR1, which the init script's procd interface
// trigger sends. An update that changed nothing (a DHCP renewal) thus
// costs one ping.
func (a *Agent) NetworkChanged() { a.netChange.notify(time.Now()) }

// netChange broadcasts rate-limited network changes: each applied change
// closes the channel that changed() returned before it. The zero value is
// ready to use.
type netChange struct {
	mu      sync.Mutex
	ch      chan struct{}
	last    time.Time   // when the last change was applied
	pending *time.Timer // a change deferred by the rate limit
	count   uint64      // changes applied
}

// changed returns a channel closed at the next applied change.
func (n *netChange) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// notify applies a change now, or once netChangeEvery has passed since
// the last one; changes meanwhile fold into that one.
func (n *netChange) notify(now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pending != nil {
		return
	}
	if wait := n.last.Add(netChangeEvery).Sub(now); !n.last.IsZero() && wait > 0 {
		n.pending = time.AfterFunc(wait, func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.pending = nil
			n.apply(time.Now())
		})
		return
	}
	n.apply(now)
}

// apply wakes every waiter; the caller holds mu.
func (n *netChange) apply(now time.Time) {
	n.last = now
	n.count++
	if n.ch != nil {
		close(n.ch)
	}
	n.ch = make(chan struct{})
}

// applied returns how many changes were applied (for tests).
func (n *netChange) applied() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.count
}

// watchNetChange runs beside one link until ctx ends. At each network
// change it pings the relay and reports true (end the link, re-dial) when
// nothing authenticated arrives from the relay within answerWait.
func (a *Agent) watchNetChange(ctx context.Context, c *control, conn *relaylink.Conn, log *slog.Logger) bool {
	changed := a.netChange.changed()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
		changed = a.netChange.changed() // a change during this check is not lost
		start := time.Now()
		before := conn.LastReceive()
		c.send(protocol.Ping{SentNanos: start.UnixNano()})
		wait := answerWait(a.state.roundTrip())
		answered := false
		for !answered && time.Since(start) < wait {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(20 * time.Millisecond):
			}
			answered = conn.LastReceive().After(before)
		}
		if !answered {
			log.Info("network changed: the relay link does not answer; re-dialing", "waited", wait)
			return true
		}
		log.Info("network changed: the relay link answers; kept", "after", time.Since(start).Round(time.Millisecond))
		// The first answer may predate the relay's move to our new
		// address (it validates the new path first); the Pong of a second
		// ping reports the address it now sees, and a new one starts NAT
		// discovery (readControl).
		select {
		case <-ctx.Done():
			return false
		case <-time.After(max(2*a.state.roundTrip(), 100*time.Millisecond)):
		}
		c.send(protocol.Ping{SentNanos: time.Now().UnixNano()})
	}
}

// dialUntilNetChange is dial, given up when the network changes meanwhile:
// a dial over the old uplink can take its full timeout to fail.
func (a *Agent) dialUntilNetChange(ctx context.Context, cfg *Config, r Relay) (*relaylink.Conn, error) {
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := a.netChange.changed()
	go func() {
		select {
		case <-dctx.Done():
		case <-changed:
			cancel()
		}
	}()
	conn, err := a.dial(dctx, cfg, r)
	if err != nil && ctx.Err() == nil {
		select {
		case <-changed:
			err = fmt.Errorf("network changed during the dial: %w", err)
		default:
		}
	}
	return conn, err
}
