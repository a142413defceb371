package agent

import (
	"errors"
	"sync/atomic"

	"github.com/pinhole/pinhole/agent/internal/relaylink"
)

// linkStats count what happened to the agent's relay link, for `pinhole
// status`: an operator (and the tests) see a flapping relay, a failover,
// handshakes nobody answered or refused, and exposures the relay keeps
// refusing, without reading logs.
type linkStats struct {
	Lost             atomic.Uint64 // registered links that ended (not by our own shutdown)
	Reconnects       atomic.Uint64 // links made after an earlier one
	Failovers        atomic.Uint64 // links made to another relay than the last
	Unanswered       atomic.Uint64 // dials that got no handshake answer
	Refused          atomic.Uint64 // dials the relay refused (key, version)
	ExposuresRefused atomic.Uint64 // exposure verdicts other than ok
	ExposuresRetried atomic.Uint64 // Registers re-sent for retryable refusals
	DuplicateKey     atomic.Uint64 // "another agent uses this key" notices
}

// dialFailed counts a failed dial by what came back.
func (s *linkStats) dialFailed(err error) {
	switch {
	case errors.Is(err, relaylink.ErrRefused):
		s.Refused.Add(1)
	case errors.Is(err, relaylink.ErrNoAnswer):
		s.Unanswered.Add(1)
	}
}

func (s *linkStats) counters(m map[string]uint64) {
	m["relay_links_lost"] = s.Lost.Load()
	m["relay_reconnects"] = s.Reconnects.Load()
	m["relay_failovers"] = s.Failovers.Load()
	m["handshakes_unanswered"] = s.Unanswered.Load()
	m["handshakes_refused"] = s.Refused.Load()
	m["exposures_refused"] = s.ExposuresRefused.Load()
	m["exposures_retried"] = s.ExposuresRetried.Load()
	m["duplicate_key_notices"] = s.DuplicateKey.Load()
}
