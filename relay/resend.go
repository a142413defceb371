package relay

import (
	"bytes"
	"net/netip"

	"github.com/pinhole/pinhole/protocol/secure"
)

// An agent whose initiation is not answered in time sends the same
// message again (agent/internal/relaylink/retry.go): its answer was lost,
// or is still being worked on. Recognising such a retry needs no
// Diffie-Hellman work: the relay keeps, for each unconfirmed UDP session,
// the initiation it answered, found by its mac1 (a MAC of the whole
// message), and answers a byte-identical copy from the same address and
// port with the same message 2. No second session is built and no
// handshake budget is spent; a copy from another address goes through
// the gates like any initiation (a replay from elsewhere, or a NAT that
// rebound mid-handshake). Before, every retry was a new initiation that
// cost the relay a handshake to recognise, and after a restart under
// thousands of agents the retries outnumbered the agents four to one.
//
// Each session answers at most maxResends copies, so a captured
// initiation replayed with its sender's source address cannot make the
// relay send that address an unbounded stream (message 2 is smaller than
// message 1 anyway: no amplification). Once the session is confirmed,
// a late copy from the same address (sent before the agent had its
// answer) is dropped, matched by mac1 alone (the message itself is freed
// then): it used to cost two DH to be found stale, and a cookie. An
// entry leaves when its session is released, so they are bounded by the
// sessions.

// maxResends bounds the answers one pending session sends again: more
// than an agent's retries within one dial.
const maxResends = 8

// resend answers msg, a HandshakeInit from from, if it is a copy of the
// initiation of an unconfirmed session from the same address: with the
// session's message 2 again. It reports whether msg was dealt with
// (answered, or dropped as one copy too many).
func (r *Relay) resend(msg []byte, from netip.AddrPort) bool {
	if len(msg) != secure.InitLen {
		return false
	}
	r.mu.Lock()
	s := r.answered[secure.MAC1(msg)]
	if s == nil || s.addr != from {
		r.mu.Unlock()
		return false
	}
	if s.m1 == nil { // confirmed: a late copy, which its agent no longer waits for
		r.mu.Unlock()
		r.stats.HandshakeCoalesced.Add(1)
		return true
	}
	if !bytes.Equal(s.m1, msg) {
		r.mu.Unlock()
		return false
	}
	s.resends++
	m2, over := s.m2, s.resends > maxResends
	r.mu.Unlock()
	if over {
		r.stats.HandshakeDropped.Add(1)
		return true
	}
	r.stats.HandshakeResent.Add(1)
	r.uio.SendNow(m2, from) // on the socket's reader: never wait for the writer
	return true
}
