package agent

import (
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

// Path choice for a peer session. The session starts on the relay; both
// sides probe the other's candidates with sealed path challenges
// (link.PacketConn.Probe), and an answered challenge makes that address
// the direct path (onDirect). A direct path that stops answering while we
// send is left for the relay within directDead, and punching is retried
// with backoff; an idle direct path is kept open by probes at the
// agent's heartbeat interval (tuned to the NAT's mapping lifetime).
const (
	// punchRound is how long one punching attempt probes; punchEvery is
	// the probe interval per candidate within it.
	punchRound = 5 * time.Second
	punchEvery = 200 * time.Millisecond
	// directSuspect: sending for this long without hearing anything
	// direct earns the direct address a probe; directDead: without an
	// answer for this long, traffic moves to the relay.
	directSuspect = 700 * time.Millisecond
	directDead    = 2 * time.Second
	// repunchMin and repunchMax bound the backoff between attempts.
	repunchMin = 5 * time.Second
	repunchMax = 2 * time.Minute
	// predictWindow is how many ports past the peer's last seen mapping
	// are probed when its NAT allocates them sequentially.
	predictWindow = 16
)

// pathState is the session's view of its paths; guarded by peerSession.mu.
type pathState struct {
	direct    netip.AddrPort // the validated direct address (zero: none yet)
	how       string         // which candidate kind it was
	strategy  string         // chosen from both sides' NAT facts
	lastTry   time.Time      // last punching attempt
	lastFail  string         // why the last attempt found nothing
	fellBack  time.Time      // when traffic last moved to the relay
	nextTry   time.Time
	backoff   time.Duration
	attempts  int
	switches  int
	firstWait time.Duration // from session start to the first direct path
}

// candidate is one address to probe and how it was found.
type candidate struct {
	addr netip.AddrPort
	kind string
}

// strategy picks what to probe from both sides' NAT facts.
func punchStrategy(self, peer protocol.NATFacts) string {
	hard := func(f protocol.NATFacts) bool {
		return f.Mapping == protocol.MappingAddressDependent || f.Mapping == protocol.MappingAddressPortDependent
	}
	switch {
	case self.UDP == protocol.No || peer.UDP == protocol.No:
		return "lan-only" // one side has no UDP: only a shared LAN can help
	case hard(self) && hard(peer) && self.Ports == protocol.PortsRandom && peer.Ports == protocol.PortsRandom:
		return "lan-only" // both random symmetric: no probe can meet
	case hard(peer) && peer.Ports == protocol.PortsSequential:
		return "predict"
	}
	return "direct"
}

// candidates lists what to probe for the strategy.
func (s *peerSession) candidates(strategy string) []candidate {
	s.mu.Lock()
	cands := slices.Clone(s.cands)
	s.mu.Unlock()
	var out []candidate
	add := func(a netip.AddrPort, kind string) {
		if a.IsValid() && a.Port() != 0 && !slices.ContainsFunc(out, func(c candidate) bool { return c.addr == a }) {
			out = append(out, candidate{a, kind})
		}
	}
	for i, a := range cands {
		switch {
		case i == 0 && strategy == "lan-only":
		case i == 0:
			add(a, "reflexive")
		case a.Addr().IsPrivate() || a.Addr().IsLoopback():
			add(a, "lan")
		case strategy != "lan-only":
			add(a, "mapped")
		}
	}
	if strategy == "predict" && len(cands) > 0 && cands[0].IsValid() {
		base, delta := int(cands[0].Port()), s.facts.Delta
		if delta == 0 {
			delta = 1
		}
		for k := 1; k <= predictWindow; k++ {
			if p := base + k*delta; p > 0 && p < 65536 {
				add(netip.AddrPortFrom(cands[0].Addr(), uint16(p)), "predicted")
			}
		}
	}
	return out
}

// pathLoop punches, then watches the direct path, until the session ends.
func (s *peerSession) pathLoop() {
	select {
	case <-s.ctx.Done():
		return
	case <-time.After(s.startIn):
	}
	s.punch()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.watch()
	}
}

// punch runs one punching attempt: probes to every candidate every
// punchEvery until one answers or punchRound ends.
func (s *peerSession) punch() {
	var self protocol.NATFacts
	s.mu.Lock()
	s.path.lastTry = time.Now()
	s.path.attempts++
	s.mu.Unlock()
	var strategy string
	var cands []candidate
	end := time.Now().Add(punchRound)
	t := time.NewTicker(punchEvery)
	defer t.Stop()
	for time.Now().Before(end) {
		// Planned again every round: NAT facts (ours or the peer's)
		// often arrive while the first attempt runs.
		if rep, ok := s.m.a.state.natReport(); ok {
			self = protocol.FactsOf(rep)
		}
		s.mu.Lock()
		strategy = punchStrategy(self, s.facts)
		s.path.strategy = strategy
		s.mu.Unlock()
		cands = s.candidates(strategy)
		for _, c := range cands {
			s.pc.Probe(c.addr)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if s.directNow() || s.directAgain() {
			return // watch moves traffic back to an answering old path
		}
	}
	s.punchFailed("no candidate answered (" + strategy + ", " + strconv.Itoa(len(cands)) + " candidates)")
}

// punchFailed records a failed attempt and schedules the next.
func (s *peerSession) punchFailed(why string) {
	s.mu.Lock()
	s.path.lastFail = why
	s.path.backoff = min(max(2*s.path.backoff, repunchMin), repunchMax)
	s.path.nextTry = time.Now().Add(s.path.backoff)
	first := s.path.attempts == 1
	s.mu.Unlock()
	if first {
		s.log.Info("peer path: relay (no direct path yet)", "why", why)
	}
}

// directNow reports whether traffic goes direct.
func (s *peerSession) directNow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path.direct.IsValid() && !s.pc.UsingRelay()
}

// onDirect is the PacketConn's report that addr answered a challenge and
// is now the direct path.
func (s *peerSession) onDirect(addr netip.AddrPort) {
	kind := "learned"
	for _, c := range s.candidates("predict") {
		if c.addr == addr {
			kind = c.kind
		}
	}
	s.mu.Lock()
	first := !s.path.direct.IsValid()
	s.path.direct, s.path.how = addr, kind
	s.path.backoff, s.path.lastFail = 0, ""
	s.path.switches++
	if first {
		s.path.firstWait = time.Since(s.created)
	}
	s.mu.Unlock()
	s.pc.UseRelay(false)
	s.m.stats.PathMoves.Add(1)
	s.log.Info("peer path: direct", "addr", addr, "found_as", kind, "after", time.Since(s.created).Round(time.Millisecond))
}

// watch runs every 250 ms once punching started.
func (s *peerSession) watch() {
	pc := s.pc
	now := time.Now()
	s.mu.Lock()
	direct, hasRelay := s.path.direct, s.pair != 0
	next := s.path.nextTry
	s.mu.Unlock()
	if direct.IsValid() && !pc.UsingRelay() {
		heard, sent := pc.LastDirect(), pc.LastSentDirect()
		silence := sent.Sub(heard) // sending without hearing
		switch {
		case silence > directDead && hasRelay:
			pc.UseRelay(true)
			s.mu.Lock()
			s.path.fellBack = now
			s.path.switches++
			s.path.backoff = repunchMin
			s.path.nextTry = now.Add(repunchMin)
			s.mu.Unlock()
			s.m.stats.PathMoves.Add(1)
			s.log.Info("peer path: relay (direct path stopped answering)", "addr", direct, "silent", silence.Round(time.Millisecond))
		case silence > directSuspect:
			pc.Probe(direct)
		case now.Sub(latest(heard, sent)) > s.m.a.heartbeatNow():
			pc.Probe(direct) // keep the NAT mappings of an idle path
		}
		return
	}
	if direct.IsValid() && pc.LastValidated().After(s.fellBackAt()) {
		// The old direct path answers again.
		pc.UseRelay(false)
		s.mu.Lock()
		s.path.switches++
		s.mu.Unlock()
		s.m.stats.PathMoves.Add(1)
		s.log.Info("peer path: direct again", "addr", direct)
		return
	}
	if now.After(next) {
		if direct.IsValid() {
			pc.Probe(direct)
		}
		s.punch()
	}
}

// directAgain reports whether the direct path traffic left answered a
// probe since: a punching round that re-probes it is then done (without
// this, a restored path waited out the whole round and counted as a
// failed attempt).
func (s *peerSession) directAgain() bool {
	s.mu.Lock()
	direct := s.path.direct.IsValid()
	s.mu.Unlock()
	return direct && s.pc.UsingRelay() && s.pc.LastValidated().After(s.fellBackAt())
}

func (s *peerSession) fellBackAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path.fellBack
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
