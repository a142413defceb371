package relay

import (
	"sync"

	"github.com/pinhole/pinhole/protocol"
)

// An introduction or its update concerns two agents, and the relay-wide
// introMu orders them (peers.go). Writing to an agent's control stream can
// block for as long as the write deadline (10 s) when that agent does not
// read it, so writes must not happen under introMu: one agent that stopped
// reading (or asks for introductions and never reads the answers) would
// hold up every introduction on the relay. Instead, messages are posted
// under introMu to the agent's outbox, which keeps their order, and a
// goroutine that exists only while the outbox holds messages writes them.

// outboxCap bounds the control messages waiting for one agent. An agent
// whose control stream holds this many unread is not reading it: the
// session ends rather than queueing without bound.
const outboxCap = 256

// outbox is a session's queue of control messages to send in order; the
// zero value is ready.
type outbox struct {
	mu       sync.Mutex
	q        []protocol.Message
	draining bool // a goroutine is writing q
}

// post queues m for s's control stream and returns at once. Messages
// posted by one goroutine, or under one lock, reach the agent in that
// order.
func (s *session) post(m protocol.Message) {
	o := &s.out
	o.mu.Lock()
	if len(o.q) >= outboxCap {
		o.mu.Unlock()
		s.log.Warn("agent does not read its control stream; closing the session", "queued", outboxCap)
		s.r.sessions.Go(func() { s.shutdown("control stream not read") })
		return
	}
	o.q = append(o.q, m)
	start := !o.draining
	o.draining = true
	o.mu.Unlock()
	if start {
		s.r.sessions.Go(s.drainOutbox)
	}
}

// drainOutbox writes the outbox until it is empty. A write that fails
// (the agent read nothing for the write deadline, or the link is gone)
// ends the session: the stream may hold part of a message. After the
// session ended, writes fail at once and the rest is discarded.
func (s *session) drainOutbox() {
	o := &s.out
	for {
		o.mu.Lock()
		if len(o.q) == 0 {
			o.q = nil // an idle session keeps no queue
			o.draining = false
			o.mu.Unlock()
			return
		}
		m := o.q[0]
		o.q[0] = nil
		o.q = o.q[1:]
		o.mu.Unlock()
		if s.send(m) != nil {
			s.shutdown("control write failed")
		}
	}
}
