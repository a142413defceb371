package relaylink

import (
	"math/rand/v2"
	"time"
)

// When an initiation over UDP is not answered it is sent again, the same
// message (initiator.next), first after retryFirst, then after gaps that
// grow by half up to retryMax, each spread by ±retryJitter. A lost
// datagram costs a second; a relay that restarts under thousands of
// agents, and answers them as fast as its cores allow, gets fewer copies
// of each initiation while it works through the first ones (a copy costs
// it a lookup, relay/resend.go, but the agents' sends and the relay's
// reads still add up); and the jitter keeps agents that one restart
// dropped together from retrying in lockstep. The growth is gentle and
// retryMax short beside a dial's wait (3 s before the TCP fallback, about
// 22 s UDP-only): an agent dropped by a relay that stops and starts
// again in a second or two sends its first copies to a relay that is not
// there yet, and must not wait long for the one that comes back
// (doubling gaps: restarts took 3-10 s at 1,000 agents instead of 3).
const (
	retryFirst  = time.Second
	retryGrowth = 1.5
	retryMax    = 4 * time.Second
	retryJitter = 0.2
)

// retryGaps is the schedule of one handshake's retries; the zero value
// starts at retryFirst.
type retryGaps struct{ next time.Duration }

// gap returns the wait before the next retry.
func (g *retryGaps) gap() time.Duration {
	d := max(g.next, retryFirst)
	g.next = min(time.Duration(retryGrowth*float64(d)), retryMax)
	return time.Duration(float64(d) * (1 - retryJitter + 2*retryJitter*rand.Float64()))
}
