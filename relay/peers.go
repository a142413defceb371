package relay

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"github.com/pinhole/pinhole/protocol"
)

// Peer introductions. An agent asks to meet another agent of this relay by
// name (PeerConnect); the relay sends both a PeerIntro with the other's
// key, candidates and NAT facts under a fresh pair id, and from then on
// passes their sealed peer datagrams (DataForward) between the two links
// of that pair, and no others: the relay is no open forwarder. It never
// holds the peers' session keys; it sees ciphertext and sizes.
//
// Which services a peer may reach is the exposing agent's decision (its
// `peers` lists): the relay vouches only for names and keys.

// maxPairsPerSession bounds the introductions one agent may hold open: a
// misbehaving agent asking again and again cannot grow the table.
const maxPairsPerSession = 64

// pair is one introduction.
type pair struct {
	id   uint32
	a, b *session // a asked
}

// other returns the side of p that is not s (nil when s is neither).
func (p *pair) other(s *session) *session {
	switch s {
	case p.a:
		return p.b
	case p.b:
		return p.a
	}
	return nil
}

// peerState is a session's part in introductions; guarded by Relay.mu.
type peerState struct {
	info  protocol.PeerInfo
	pairs map[uint32]*pair
}

// PeerStats count introductions and forwarded datagrams.
type PeerStats struct {
	Intros         atomic.Uint64 // pairs introduced
	Refused        atomic.Uint64 // PeerConnects answered offline or unknown
	Forwarded      atomic.Uint64 // peer datagrams passed on
	ForwardedBytes atomic.Uint64
	ForwardDropped atomic.Uint64 // for no pair of the sender, or malformed
}

// setPeerInfo records what s offers its peers, and tells the agents it
// is paired with: NAT facts measured after an introduction change their
// punching strategy.
func (s *session) setPeerInfo(m protocol.PeerInfo) {
	s.r.introMu.Lock()
	defer s.r.introMu.Unlock()
	s.r.mu.Lock()
	s.peers.info = m
	var updates []func()
	for _, p := range s.peers.pairs {
		o := p.other(s)
		in := protocol.PeerIntro{Pair: p.id, Initiator: o == p.a, Peer: s.entry.Load().Name, Key: s.key,
			Candidates: s.candidatesLocked(), Facts: m.Facts}
		updates = append(updates, func() { o.post(in) })
	}
	s.r.mu.Unlock()
	for _, u := range updates {
		u()
	}
}

// candidatesLocked is what s's peers get: the reflexive address first
// (over TCP, the IP with port 0: a TCP source port means nothing to a UDP
// punch), then what the agent offered.
func (s *session) candidatesLocked() []netip.AddrPort {
	var c []netip.AddrPort
	if s.pc != nil {
		c = append(c, s.pc.Peer())
	} else {
		// Over TCP only the public IP means something to the peer (for
		// TCP simultaneous open); port 0 keeps UDP probes away from it.
		c = append(c, netip.AddrPortFrom(s.addr.Addr(), 0))
	}
	for _, a := range s.peers.info.Candidates {
		if len(c) < protocol.MaxCandidates && a.IsValid() && a != c[0] {
			c = append(c, a)
		}
	}
	return c
}

// introduce answers s's PeerConnect.
func (s *session) introduce(m protocol.PeerConnect) {
	r := s.r
	r.introMu.Lock()
	defer r.introMu.Unlock()
	self := s.entry.Load()
	r.mu.Lock()
	var target *session
	known := false
	for _, e := range r.cfg.Load().Agents {
		if e.Name == m.Peer && e.PublicKey != self.PublicKey {
			known = true
			target = r.live[e.PublicKey]
			break
		}
	}
	if target == nil || len(s.peers.pairs) >= maxPairsPerSession || len(target.peers.pairs) >= maxPairsPerSession {
		if known && target == nil && len(r.waiting[m.Peer]) < maxPairsPerSession {
			// Introduce them as soon as the peer connects.
			r.waiting[m.Peer] = append(r.waiting[m.Peer], s)
		}
		r.mu.Unlock()
		st := protocol.PeerOffline
		if !known {
			st = protocol.PeerUnknown
		}
		r.stats.Peers.Refused.Add(1)
		s.log.Info("peer introduction refused", "peer", m.Peer, "status", st)
		s.post(protocol.PeerIntro{Status: st, Peer: m.Peer})
		return
	}
	// Asked again for a peer it already has a pair with (the agent's
	// retry crossing the waiting list's introduction, or a retry after a
	// failed handshake): the same pair, introduced again. A second pair
	// made the asker run two handshakes and drop the first session with
	// whatever stream it had just opened, and every retry held one more
	// pair until maxPairsPerSession refused all introductions.
	var p *pair
	for _, q := range s.peers.pairs {
		if q.a == s && q.b == target {
			p = q
			break
		}
	}
	if p == nil {
		p = &pair{id: r.newPairIDLocked(), a: s, b: target}
		r.pairs[p.id] = p
		s.addPairLocked(p)
		target.addPairLocked(p)
	}
	toA := protocol.PeerIntro{Pair: p.id, Initiator: true, Peer: target.entry.Load().Name, Key: target.key,
		Candidates: target.candidatesLocked(), Facts: target.peers.info.Facts}
	toB := protocol.PeerIntro{Pair: p.id, Peer: self.Name, Key: s.key,
		Candidates: s.candidatesLocked(), Facts: s.peers.info.Facts}
	r.mu.Unlock()

	// Both sides should start punching at the same moment: the intro to
	// the farther agent arrives later, so the nearer one waits for the
	// difference of the one-way delays.
	ra, rb := s.link.SRTT(), target.link.SRTT()
	if ra > rb {
		toB.StartIn = (ra - rb) / 2
	} else {
		toA.StartIn = (rb - ra) / 2
	}
	r.stats.Peers.Intros.Add(1)
	s.log.Info("peers introduced", "peer", toA.Peer, "pair", p.id)
	s.post(toA)
	target.post(toB)
}

// introduceWaiting introduces s to the agents that asked for it while it
// was offline.
func (r *Relay) introduceWaiting(s *session) {
	name := s.entry.Load().Name
	r.mu.Lock()
	w := r.waiting[name]
	delete(r.waiting, name)
	r.mu.Unlock()
	for _, asker := range w {
		select {
		case <-asker.done:
		default:
			asker.introduce(protocol.PeerConnect{Peer: name})
		}
	}
}

func (s *session) addPairLocked(p *pair) {
	if s.peers.pairs == nil {
		s.peers.pairs = map[uint32]*pair{}
	}
	s.peers.pairs[p.id] = p
}

// newPairIDLocked returns an unused, unguessable pair id.
func (r *Relay) newPairIDLocked() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		id := binary.BigEndian.Uint32(b[:])
		if _, taken := r.pairs[id]; !taken && id != 0 {
			return id
		}
	}
}

// forward passes a peer datagram from s to the other agent of its pair.
func (s *session) forward(p []byte) {
	r := s.r
	id, inner, err := protocol.ParseForward(p)
	if err != nil || len(inner) > protocol.MaxDatagram {
		r.stats.Peers.ForwardDropped.Add(1)
		return
	}
	r.mu.Lock()
	var to *session
	if pr := s.peers.pairs[id]; pr != nil {
		to = pr.other(s)
	}
	r.mu.Unlock()
	if to == nil {
		r.stats.Peers.ForwardDropped.Add(1)
		return
	}
	if to.link.Forward(p) != nil {
		r.stats.Peers.ForwardDropped.Add(1)
		return
	}
	r.stats.Peers.Forwarded.Add(1)
	r.stats.Peers.ForwardedBytes.Add(uint64(len(inner)))
}

// dropPairsLocked ends s's introductions and returns the other sides with
// the pair ids they must be told about.
func (s *session) dropPairsLocked() map[*session][]uint32 {
	gone := map[*session][]uint32{}
	for id, p := range s.peers.pairs {
		delete(s.r.pairs, id)
		if o := p.other(s); o != nil {
			delete(o.peers.pairs, id)
			gone[o] = append(gone[o], id)
		}
	}
	s.peers.pairs = nil
	return gone
}

// tellGone sends PeerIntro{Status: PeerGone} for each ended pair: the
// other agent keeps a direct path if it has one, and asks again otherwise.
func tellGone(gone map[*session][]uint32) {
	for o, ids := range gone {
		for _, id := range ids {
			o.post(protocol.PeerIntro{Pair: id, Status: protocol.PeerGone})
		}
	}
}
