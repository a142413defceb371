package relaylink

import (
	"math/rand/v2"
	"time"
)

// When an initiation over UDP is not answered it is sent again, the same
// message (initiator.next), first after retryFirst, then after gaps that
// double up to retryMax, each spread by ±retryJitter. A lost datagram
// costs a second; a relay that restarts under thousands of agents, and
// answers them as fast as its cores allow, is not sent a second copy of
// every initiation each second while it works through the first ones;
// and the jitter keeps agents that a restart dropped together from
// retrying in lockstep. retryMax stays short beside a dial's wait (3 s
// before the TCP fallback, about 22 s UDP-only), so a relay that comes
// back is found within a few seconds.
const (
	retryFirst  = time.Second
	retryMax    = 4 * time.Second
	retryJitter = 0.2
)

// retryGaps is the schedule of one handshake's retries; the zero value
// starts at retryFirst.
type retryGaps struct{ next time.Duration }

// gap returns the wait before the next retry.
func (g *retryGaps) gap() time.Duration {
	d := max(g.next, retryFirst)
	g.next = min(2*d, retryMax)
	return time.Duration(float64(d) * (1 - retryJitter + 2*retryJitter*rand.Float64()))
}
