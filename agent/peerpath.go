package agent

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/pinhole/pinhole/agent/internal/netcheck"
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
	random := func(f protocol.NATFacts) bool { return hard(f) && f.Ports == protocol.PortsRandom }
	switch {
	case self.UDP == protocol.No || peer.UDP == protocol.No:
		return "tcp" // one side has no UDP: TCP simultaneous open, or a shared LAN
	case random(self) && random(peer):
		return "lan-only" // both random symmetric: no probe can meet
	case random(self) && !hard(peer):
		return "birthday-open" // we open many mappings, the peer sprays
	case random(peer) && !hard(self):
		return "birthday-spray" // the peer opens many mappings, we spray
	case hard(peer) && peer.Ports == protocol.PortsSequential:
		return "predict"
	}
	return "direct"
}

// hard reports an address-dependent mapping: a new port per destination.
func hard(f protocol.NATFacts) bool {
	return f.Mapping == protocol.MappingAddressDependent || f.Mapping == protocol.MappingAddressPortDependent
}

// sequential reports a hard mapping whose ports come in sequence.
func sequential(f protocol.NATFacts) bool { return hard(f) && f.Ports == protocol.PortsSequential }

// hintFresh bounds how old the peer's newest-mapping hint may be.
const hintFresh = 30 * time.Second

// candidates lists what to probe for the strategy. Behind a sequential
// NAT ourselves (seqSelf), every new destination costs us the next port,
// which the peer predicts: the predicted window goes first, in order, and
// a hard peer's reflexive address (useless: its mapping was for the
// relay) is not probed at all.
func (s *peerSession) candidates(strategy string, seqSelf bool) []candidate {
	s.mu.Lock()
	cands := slices.Clone(s.cands)
	hint, hintAt := s.hint, s.hintAt
	peerHard := hard(s.facts)
	delta := s.facts.Delta
	s.mu.Unlock()
	var out []candidate
	add := func(a netip.AddrPort, kind string) {
		if a.IsValid() && a.Port() != 0 && !slices.ContainsFunc(out, func(c candidate) bool { return c.addr == a }) {
			out = append(out, candidate{a, kind})
		}
	}
	predict := func() {
		if strategy != "predict" || len(cands) == 0 || !cands[0].IsValid() {
			return
		}
		// Past the peer's newest mapping (a hint, just made) first, then
		// past the one the relay saw: a mapping the peer made toward us
		// before it could send the hint lies there.
		bases := []int{int(cands[0].Port())}
		if hint.Addr() == cands[0].Addr() && time.Since(hintAt) < hintFresh {
			bases = append([]int{int(hint.Port())}, bases...)
		}
		if delta == 0 {
			delta = 1
		}
		for _, base := range bases {
			for k := 1; k <= predictWindow; k++ {
				if p := base + k*delta; p > 0 && p < 65536 {
					add(netip.AddrPortFrom(cands[0].Addr(), uint16(p)), "predicted")
				}
			}
		}
	}
	if seqSelf {
		predict()
	}
	for i, a := range cands {
		switch {
		case i == 0 && (strategy == "lan-only" || strategy == "tcp" || seqSelf && peerHard):
		case i == 0:
			add(a, "reflexive")
		case a.Addr().IsPrivate() || a.Addr().IsLoopback():
			add(a, "lan")
		case strategy != "lan-only" && strategy != "tcp":
			add(a, "mapped")
		}
	}
	predict()
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
	var bday *birthdaySet
	var bdaySent time.Time
	sprayed := 0
	defer func() {
		if bday != nil {
			bday.finish()
		}
	}()
	start := time.Now()
	end := start.Add(punchRound)
	hinted, tcpTried := false, false
	t := time.NewTicker(punchEvery)
	defer t.Stop()
	for time.Now().Before(end) {
		// Planned again every round: NAT facts (ours or the peer's)
		// often arrive while the first attempt runs.
		self = s.m.a.selfFacts()
		s.mu.Lock()
		strategy = punchStrategy(self, s.facts)
		s.path.strategy = strategy
		peerSeq, hintAt := sequential(s.facts), s.hintAt
		s.mu.Unlock()
		seqSelf := sequential(self)
		if seqSelf && !hinted {
			// Tell the peer where our next mapping will be: one new
			// mapping now, whose port plus the delta is the next.
			hinted = true
			if m, err := s.m.a.freshMapping(s.ctx); err == nil {
				s.sendCtrl(protocol.PeerInfo{Candidates: []netip.AddrPort{m}})
			}
		}
		waitHint := seqSelf && peerSeq && hintAt.Before(start) && time.Since(start) < 1500*time.Millisecond
		if !waitHint { // both sequential: probe only once we know where the peer's next port is
			cands = s.candidates(strategy, seqSelf)
			for _, c := range cands {
				s.pc.Probe(c.addr)
			}
		}
		if strategy == "tcp" && !tcpTried {
			tcpTried = true
			s.wg.Go(s.punchTCP)
		}
		if refl := s.reflexive(); refl.IsValid() && refl.Port() != 0 {
			switch strategy {
			case "birthday-open":
				if bday == nil {
					bday = s.openBirthday()
				}
				if time.Since(bdaySent) >= birthdayResend {
					bday.probe(refl)
					bdaySent = time.Now()
				}
			case "birthday-spray":
				if sprayed < birthdaySpray {
					s.spray(refl.Addr(), sprayPerTick)
					sprayed += sprayPerTick
				}
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if s.directNow() || s.tryReturn() {
			return
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
	if isTCPPath(addr) {
		kind = "tcp"
	}
	for _, c := range s.candidates("predict", false) {
		if c.addr == addr {
			kind = c.kind
		}
	}
	s.mu.Lock()
	if kind == "learned" && (s.path.strategy == "birthday-open" || s.path.strategy == "birthday-spray") {
		kind = "birthday"
	}
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
	s.log.Info("peer path: direct", "addr", shownAddr(addr), "found_as", kind, "after", time.Since(s.created).Round(time.Millisecond))
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
	if s.tryReturn() {
		return
	}
	if now.After(next) {
		if direct.IsValid() {
			pc.Probe(direct)
		}
		s.punch()
	}
}

// reflexive is the peer's address as the relay sees it (zero: unknown).
func (s *peerSession) reflexive() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cands) > 0 {
		return s.cands[0]
	}
	return netip.AddrPort{}
}

// tryReturn moves traffic back to the old direct path once it answers a
// challenge again, and reports whether it did.
func (s *peerSession) tryReturn() bool {
	s.mu.Lock()
	direct, fell := s.path.direct, s.path.fellBack
	s.mu.Unlock()
	if !direct.IsValid() || !s.pc.UsingRelay() || !s.pc.LastValidated().After(fell) {
		return false
	}
	s.pc.UseRelay(false)
	s.mu.Lock()
	s.path.switches++
	s.path.backoff, s.path.lastFail = 0, ""
	s.mu.Unlock()
	s.m.stats.PathMoves.Add(1)
	s.log.Info("peer path: direct again", "addr", direct)
	return true
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// freshMapping makes one new mapping toward the relay (netcheck.Fresh).
func (a *Agent) freshMapping(ctx context.Context) (netip.AddrPort, error) {
	relay, ok := a.state.relayUDP()
	if !ok {
		return netip.AddrPort{}, errNoRelayPath
	}
	cfg := a.cfg.Load()
	local := localToward(a.sock.LocalAddr(), relay, cfg.ListenPacket == nil)
	chk := netcheck.New(netcheck.Config{Relay: relay, Local: local, Send: a.sock.Send, Listen: a.probeListener(cfg, local)})
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return chk.Fresh(ctx)
}

// relayUDP returns the relay's address while the link is over UDP.
func (s *state) relayUDP() (netip.AddrPort, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr, s.up && s.transport == "udp"
}
