package agent

import (
	"context"
	"sync"
	"time"

	"github.com/pinhole/pinhole/agent/internal/relaylink"
)

// netChangeEvery is the least time between two network-change re-dials:
// an interface flapping ten times a second costs one re-dial a second, and
// the last change of a burst is never lost (it runs when the second ends).
const netChangeEvery = time.Second

// NetworkChanged tells the agent that its uplink changed: the WAN came
// back (a PPPoE redial, a DHCP lease with a new address, a modem reset)
// and the NAT mappings the link used are likely gone. Without it the
// agent notices only when heartbeats go unanswered, and heartbeats tuned
// to a long mapping lifetime are minutes apart. The link is re-dialed at
// once (a dial or backoff wait in progress is cut short) and NAT discovery
// runs again on the new link even if the public address is the same.
// cmd/pinhole calls it on SIGUSR1, which the init script's procd interface
// trigger sends.
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

// applied returns how many changes were applied (for status and tests).
func (n *netChange) applied() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.count
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
	return a.dial(dctx, cfg, r)
}
