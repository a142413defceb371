package relay

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// A handshake passes three gates, cheapest first, for UDP and TCP alike:
//
//  1. admit (before any Diffie-Hellman work or budget): the version, then
//     mac1, which only someone who knows the relay's public key can
//     compute, so blind junk costs nothing and locks nobody out. Then the
//     per-source budget: a message whose mac2 proves that its sender
//     receives at its address and port is charged to that address and
//     port alone; any other is charged to its source IP, and when that
//     budget is spent the sender gets a cookie to prove its address with.
//     So a flood from other ports behind the same NAT delays an agent by
//     one round trip, not for as long as the flood lasts.
//  2. accept (on the handshake worker; X25519 es, and ss unless kept from
//     the key's last handshake, then the response's three): the key must
//     be listed; the timestamp must be newer than the one of the key's last
//     confirmed session, unless the message echoes a valid cookie (it is
//     fresh then, whatever the agent's clock says); and there must be room
//     for another unconfirmed session of the key. A stale timestamp or a
//     full set of unconfirmed sessions is answered with a cookie, and a
//     handshake that carries one evicts the oldest unconfirmed session: a
//     replay never confirms, so replays cannot keep a real agent out.
//  3. the session's first authenticated packet (session.run): only then is
//     it live, its timestamp recorded and an older session replaced.

// handshakeVerdict is what admit decided.
type handshakeVerdict int

const (
	verdictDrop   handshakeVerdict = iota // dropped (counted, maybe refused)
	verdictCookie                         // answered with a cookie: the sender may try again
	verdictOpen                           // charged to the source IP's budget
	verdictProven                         // mac2 proved the source address
)

// admit runs gate 1 on msg from from; reply sends an answer to from.
func (r *Relay) admit(msg []byte, from netip.AddrPort, transport link.Transport, reply func([]byte)) handshakeVerdict {
	now := time.Now()
	h, err := protocol.ParseHandshakeHeader(msg)
	if err == nil && h.Type == protocol.TypeHandshakeInit && h.Version != protocol.Version {
		r.stats.HandshakeFailed.Add(1)
		r.drops.logWarn(from, "unsupported protocol version", "transport", transport, "version", h.Version, "want", protocol.Version)
		r.refuse(protocol.Refuse{Code: protocol.RefuseVersion, Version: protocol.Version, Index: h.Sender}, reply)
		return verdictDrop
	}
	if !r.macs.Load().CheckMAC1(msg) {
		// Garbage, or an agent that pinned another relay key: mac1 is
		// keyed by the relay's public key, so the relay cannot tell which.
		r.stats.HandshakeJunk.Add(1)
		r.drops.log(from, "bad mac1 (junk, or an agent that pinned another relay key)", "transport", transport)
		return verdictDrop
	}
	if r.macs.Load().CheckMAC2(msg, from, now) {
		if !r.limiter.allowProven(from, r.agentsAt.count(from.Addr().Unmap()), now) {
			r.stats.HandshakeDropped.Add(1)
			r.drops.log(from, "proven handshake rate from this address, or from this address and port", "transport", transport)
			return verdictDrop
		}
		return verdictProven
	}
	if r.limiter.allow(from.Addr(), now) {
		return verdictOpen
	}
	r.stats.HandshakeDropped.Add(1)
	r.drops.log(from, "handshake rate from this address: answering with a cookie", "transport", transport)
	r.sendCookie(msg, from, protocol.CookieLoad, reply)
	return verdictCookie
}

// sendCookie answers msg with a cookie. A cookie reply is smaller than
// the message it answers, so the relay is no amplifier for spoofed
// sources; its budget is its own and generous (a flood of Refuse-worthy
// junk must not use up the cookies real agents need to get in).
func (r *Relay) sendCookie(msg []byte, from netip.AddrPort, reason protocol.CookieReason, reply func([]byte)) {
	if r.cookieTokens.Add(-1) < 0 {
		return
	}
	r.stats.CookiesSent.Add(1)
	reply(r.macs.Load().CookieReply(msg, from, reason, time.Now()))
}

// accept runs gate 2 for either transport. It returns the session keys,
// the agent entry, message 2 and the decrypted message 1, or nil after
// counting, logging and answering the reason; then the verdict says
// whether the answer was a cookie.
func (r *Relay) accept(msg []byte, from netip.AddrPort, transport link.Transport, reply func([]byte)) (*secure.Session, *AgentEntry, []byte, *secure.Response, handshakeVerdict) {
	cfg := r.cfg.Load()
	key := r.static.Load()
	resp, err := key.ConsumeCached(msg, &key.ss)
	if err != nil {
		r.stats.HandshakeFailed.Add(1)
		if !errors.Is(err, secure.ErrVersion) {
			r.drops.log(from, "handshake does not decrypt", "transport", transport, "err", err)
		}
		return nil, nil, nil, nil, verdictDrop
	}
	entry := cfg.agentByKey(resp.Peer)
	if entry == nil {
		r.stats.UnknownAgent.Add(1)
		r.drops.logWarn(from, "agent key not listed in relay config", "transport", transport, "key", resp.Peer.String())
		r.refuse(protocol.Refuse{Code: protocol.RefuseUnknownKey, Version: protocol.Version, Index: resp.PeerIndex}, reply)
		return nil, nil, nil, nil, verdictDrop
	}
	key.ss.Keep(resp) // listed: its ss is kept for its next handshakes
	fresh := r.macs.Load().ValidCookie(resp.Cookie, from, time.Now())
	if !fresh && !r.replay.Fresh(resp.Peer, resp.Timestamp) {
		r.stats.Replayed.Add(1)
		r.drops.log(from, "timestamp not newer than the last session's (replay, or clock behind): answering with a cookie",
			"agent", entry.Name, "transport", transport)
		r.sendCookie(msg, from, protocol.CookieStale, reply)
		return nil, nil, nil, nil, verdictCookie
	}
	r.mu.Lock()
	if s := r.retryOfLocked(resp, from, transport); s != nil {
		// A retry of an initiation already answered: the agent keeps its
		// recent initiations and takes the answer to any, so the same
		// message 2 serves it, without a second session. Under load an
		// answer can take longer than the agent's 1 s retry; building a
		// session per retry made the relay slower still, and a retry
		// carrying a cookie evicted the session the agent was about to
		// confirm.
		m2 := s.m2
		r.mu.Unlock()
		r.stats.HandshakeResent.Add(1)
		reply(m2)
		return nil, nil, nil, nil, verdictDrop
	}
	var evict *session
	if p := r.pending[resp.Peer]; len(p) >= maxPendingPerKey || len(r.byIndex) >= maxPending+len(r.live) {
		if !fresh || len(p) == 0 {
			r.mu.Unlock()
			r.stats.PendingDiscarded.Add(1)
			r.drops.log(from, "unconfirmed sessions of this key pending: answering with a cookie", "agent", entry.Name)
			r.sendCookie(msg, from, protocol.CookieBusy, reply)
			return nil, nil, nil, nil, verdictCookie
		}
		// The oldest: a replay, or an attempt its agent gave up on. It
		// leaves the pending set now, under mu, so it can no longer be
		// activated even if its first packet is being read right now.
		evict = p[0]
		evict.evicted = true
		r.dropPendingLocked(evict)
	}
	idx := r.newIndexLocked()
	r.byIndex[idx] = nil // reserve
	r.mu.Unlock()
	if evict != nil {
		r.stats.PendingDiscarded.Add(1)
		evict.shutdown("evicted by a fresher handshake")
	}
	hp := protocol.HandshakePayload{Observed: from, TimeNanos: time.Now().UnixNano()}
	if parks(cfg, resp, transport) {
		hp.Caps = protocol.FlagParkable
	} else {
		resp.Flags &^= protocol.FlagParkable // the link starts in the smux layout
	}
	payload := hp.Append(nil)
	sess, m2, err := resp.Respond(idx, payload)
	if err != nil {
		r.mu.Lock()
		delete(r.byIndex, idx)
		r.mu.Unlock()
		return nil, nil, nil, nil, verdictDrop
	}
	r.stats.Handshakes.Add(1)
	return sess, entry, m2, resp, verdictOpen
}

// retryOfLocked returns the unconfirmed UDP session that resp retries: the
// same key, the same sender index (an agent keeps its index for all the
// retries of one dial and draws a new one for the next dial, or when it
// restarts) and the same source address and port.
func (r *Relay) retryOfLocked(resp *secure.Response, from netip.AddrPort, transport link.Transport) *session {
	if transport != link.UDP {
		return nil // a TCP session belongs to its connection
	}
	for _, s := range r.pending[resp.Peer] {
		if s.transport == link.UDP && s.peerIndex == resp.PeerIndex && s.addr == from && s.m2 != nil {
			return s
		}
	}
	return nil
}

// join registers s, not yet confirmed, unless the relay is stopping: a
// handshake finished after Run closed every session would leave one
// waiting for its control stream (up to confirmTimeout) while Run waits
// for it (seen: a relay that took over 10 s to stop). It reports whether
// s joined; if not, s is shut down.
func (r *Relay) join(s *session) bool {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		s.shutdown("relay shutting down")
		return false
	}
	r.addPendingLocked(s)
	r.mu.Unlock()
	return true
}

// addPendingLocked registers s, not yet confirmed, in the maps; a UDP
// session with its initiation, for the copies of it (resend.go).
func (r *Relay) addPendingLocked(s *session) {
	r.byIndex[s.index] = s
	r.pending[s.key] = append(r.pending[s.key], s)
	if s.m1 != nil {
		s.mac1, s.cached = secure.MAC1(s.m1), true
		r.answered[s.mac1] = s
	}
}

// forgetAnsweredLocked removes s from the copies' map (resend.go): when
// it is released, not when it is confirmed, so a copy that arrives after
// the confirmation is still known (and dropped) instead of costing two DH
// to be found stale.
func (r *Relay) forgetAnsweredLocked(s *session) {
	if s.cached && r.answered[s.mac1] == s {
		delete(r.answered, s.mac1)
	}
}

// dropPendingLocked forgets s among its key's unconfirmed sessions.
func (r *Relay) dropPendingLocked(s *session) {
	p := slices.DeleteFunc(r.pending[s.key], func(x *session) bool { return x == s })
	if len(p) == 0 {
		delete(r.pending, s.key)
	} else {
		r.pending[s.key] = p
	}
}

// parks reports whether a UDP link starts in the parked layout: the agent
// offered it and this relay's tuning allows it (link/park.go). An older
// agent offers nothing and gets the payload it can parse.
func parks(cfg *Config, resp *secure.Response, transport link.Transport) bool {
	return transport == link.UDP && resp.Flags&protocol.FlagParkable != 0 && cfg.Tuning.Parks()
}
