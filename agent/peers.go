package agent

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/agent/internal/relaylink"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// Peer sessions (agent to agent). The side with a `connect` entry asks
// the relay to introduce it to the peer; both get each other's key,
// candidates and NAT facts (protocol.PeerIntro). The asker runs a Noise IK
// handshake with the peer's key through the relay (DataForward), so the
// session is end to end: the relay forwards ciphertext and never holds a
// key. The session starts on the relay path at once (the first byte never
// waits for punching) while both sides probe each other's candidates; the
// first address to answer a sealed challenge becomes the direct path, and
// the session moves there with its streams (peersession.go, peerpath.go).
//
// Who may reach what is decided here, not by the relay: an exposure's
// `peers` list names the agents allowed to use it, an agent on no list
// gets no session at all, and a `connect` entry can pin the peer's key so
// that even a compromised relay cannot impersonate it.

// peerManager owns the agent's peer sessions across relay reconnects.
type peerManager struct {
	a      *Agent
	replay secure.Replay // handshake timestamps, per peer key

	mu     sync.Mutex
	link   *peerLink               // the current relay link; nil while down
	byPair map[uint32]*peerSession // introduced pairs on the current link
	all    map[*peerSession]bool   // every session not yet closed
	wants  map[string]*peerWant    // by peer name: the peers we connect to

	stats peerStats
}

// peerLink is what peer sessions use of the relay link.
type peerLink struct {
	conn *relaylink.Conn
	ctrl *control
}

// peerStats are counters for `pinhole status`.
type peerStats struct {
	Refused   atomic.Uint64 // introductions or streams from agents not on a peers list
	WrongKey  atomic.Uint64 // introductions whose key differs from the pinned one
	BadHello  atomic.Uint64 // handshakes that failed (forged, replayed, wrong key)
	Unrouted  atomic.Uint64 // forwarded datagrams for no pair of ours
	Sessions  atomic.Uint64 // sessions established
	PathMoves atomic.Uint64 // switches between direct and relay
}

// peerWant is one peer this agent connects to (one or more connect
// entries name it). Its session is replaced when it ends.
type peerWant struct {
	name string
	pin  secure.PublicKey

	mu      sync.Mutex
	sess    *peerSession  // live (handshake done) or nil
	changed chan struct{} // closed when sess changes
	status  string        // why there is no session, for status
	retry   time.Time     // when to ask the relay again
	backoff time.Duration
}

func newPeerManager(a *Agent) *peerManager {
	m := &peerManager{a: a, byPair: map[uint32]*peerSession{}, wants: map[string]*peerWant{}, all: map[*peerSession]bool{}}
	m.configure(a.cfg.Load())
	return m
}

// configure follows the connect entries of cfg (at start and on reload).
func (m *peerManager) configure(cfg *Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range cfg.Connect {
		w := m.wants[c.Peer]
		if w == nil {
			w = &peerWant{name: c.Peer, changed: make(chan struct{}), status: "waiting for the relay"}
			m.wants[c.Peer] = w
		}
		if !c.PublicKey.IsZero() {
			w.pin = c.PublicKey
		}
	}
}

// allowed reports whether the named agent is on some exposure's peers list.
func (m *peerManager) allowed(name string) bool {
	for _, e := range m.a.cfg.Load().Expose {
		if slices.Contains(e.Peers, name) {
			return true
		}
	}
	return false
}

// mayUse reports whether the named agent may reach the named service.
func (m *peerManager) mayUse(peer, service string) bool {
	for _, e := range m.a.cfg.Load().Expose {
		if e.Name == service {
			return slices.Contains(e.Peers, peer)
		}
	}
	return false
}

// linkUp is called when a relay link is registered: peer datagrams flow
// through it from now on, the relay learns our candidates, and the peers
// we want are asked for.
func (m *peerManager) linkUp(conn *relaylink.Conn, c *control) {
	l := &peerLink{conn: conn, ctrl: c}
	conn.SetForwardHandler(m.fromRelay)
	m.mu.Lock()
	m.link = l
	m.mu.Unlock()
	c.send(m.info(conn))
	m.askAll(true)
}

// linkDown is called when the relay link ends: every pair of it is gone.
// Sessions with a direct path live on; the others end.
func (m *peerManager) linkDown(conn *relaylink.Conn) {
	m.mu.Lock()
	if m.link == nil || m.link.conn != conn {
		m.mu.Unlock()
		return
	}
	m.link = nil
	pairs := m.byPair
	m.byPair = map[uint32]*peerSession{}
	m.mu.Unlock()
	for _, s := range pairs {
		s.relayGone()
	}
}

// info is our PeerInfo: LAN candidates on the agent's UDP port and the
// NAT facts measured so far.
func (m *peerManager) info(conn *relaylink.Conn) protocol.PeerInfo {
	facts := m.a.selfFacts()
	cands := m.a.lanCandidates(conn.Addr)
	if mapped := m.a.MappedAddr(); mapped.IsValid() {
		cands = append(cands, mapped) // the gateway forwards it to us (UPnP, NAT-PMP, PCP)
	}
	return protocol.PeerInfo{Candidates: cands, Facts: facts}
}

// askAll sends a PeerConnect for each wanted peer without a session whose
// retry time has come (all of them when now is set).
func (m *peerManager) askAll(now bool) {
	m.mu.Lock()
	l := m.link
	var ask []*peerWant
	for _, w := range m.wants {
		w.mu.Lock()
		if (w.sess == nil || !w.sess.hasRelay()) && (now || time.Now().After(w.retry)) {
			w.retry = time.Now().Add(10 * time.Second) // an answer comes long before
			ask = append(ask, w)
		}
		w.mu.Unlock()
	}
	m.mu.Unlock()
	if l == nil {
		return
	}
	for _, w := range ask {
		l.ctrl.send(protocol.PeerConnect{Peer: w.name})
	}
}

// run re-asks for wanted peers on their backoff and keeps the relay's
// view of our candidates fresh, until ctx ends.
func (m *peerManager) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.closeAll()
			return
		case <-t.C:
			m.askAll(false)
		}
	}
}

func (m *peerManager) closeAll() {
	m.mu.Lock()
	var all []*peerSession
	for s := range m.all {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		s.close("agent stopping")
	}
}

// intro handles the relay's PeerIntro.
func (m *peerManager) intro(in protocol.PeerIntro, log *slog.Logger) {
	switch in.Status {
	case protocol.PeerGone:
		m.mu.Lock()
		s := m.byPair[in.Pair]
		delete(m.byPair, in.Pair)
		m.mu.Unlock()
		if s != nil {
			s.relayGone()
		}
		return
	case protocol.PeerOffline, protocol.PeerUnknown:
		m.mu.Lock()
		w := m.wants[in.Peer]
		m.mu.Unlock()
		if w != nil {
			w.failed("relay says the peer is "+in.Status.String(), log)
		}
		return
	}
	key := secure.PublicKey(in.Key)
	m.mu.Lock()
	known := m.byPair[in.Pair]
	m.mu.Unlock()
	if known != nil {
		if known.key == key {
			known.update(in) // the peer's NAT facts or candidates changed
		}
		return
	}
	if in.Initiator {
		m.mu.Lock()
		w := m.wants[in.Peer]
		m.mu.Unlock()
		if w == nil {
			m.stats.Refused.Add(1)
			return // we did not ask
		}
		if !w.pin.IsZero() && w.pin != key {
			m.stats.WrongKey.Add(1)
			log.Error("the relay introduced a peer whose key differs from the pinned public_key; refusing it",
				"peer", in.Peer, "introduced", key.String(), "pinned", w.pin.String())
			w.failed("wrong key from the relay", log)
			return
		}
		if cur := w.current(); cur != nil && cur.key == key {
			m.rebind(cur, in) // a new relay link: the live session gets its relay path back
			return
		}
		s := m.newSession(in, log)
		s.want = w
		s.startHandshake()
		return
	}
	if !m.allowed(in.Peer) {
		m.stats.Refused.Add(1)
		log.Warn("peer introduced but not on any exposure's peers list; ignoring it", "peer", in.Peer)
		return
	}
	if cur := m.live(key); cur != nil {
		// A new relay link: the live session gets its relay path back
		// (a new handshake on the pair replaces it, see fromRelay).
		m.rebind(cur, in)
		return
	}
	m.newSession(in, log) // waits for the initiator's handshake
}

// live returns the established responder session with the peer key.
func (m *peerManager) live(key secure.PublicKey) *peerSession {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.all {
		if s.key == key && !s.initiator && s.isEstablished() {
			return s
		}
	}
	return nil
}

// newSession records a session for an introduced pair.
func (m *peerManager) newSession(in protocol.PeerIntro, log *slog.Logger) *peerSession {
	s := newPeerSession(m, in, log)
	m.mu.Lock()
	m.byPair[in.Pair] = s
	m.all[s] = true
	m.mu.Unlock()
	return s
}

// rebind gives a live session the relay path of a new pair.
func (m *peerManager) rebind(s *peerSession, in protocol.PeerIntro) {
	m.mu.Lock()
	m.byPair[in.Pair] = s
	m.mu.Unlock()
	s.setPair(in)
}

// forward sends a peer datagram through the relay for pair.
func (m *peerManager) forward(pair uint32, b []byte) error {
	m.mu.Lock()
	l := m.link
	m.mu.Unlock()
	if l == nil {
		return net.ErrClosed
	}
	bp := fwdPool.Get().(*[]byte)
	defer fwdPool.Put(bp)
	return l.conn.Forward(protocol.AppendForward((*bp)[:0], pair, b))
}

var fwdPool = sync.Pool{New: func() any { b := make([]byte, 0, protocol.MaxDatagram+128); return &b }}

// fromRelay takes a peer datagram the relay forwarded (on the link's
// reader: it must not block).
func (m *peerManager) fromRelay(p []byte) {
	pair, inner, err := protocol.ParseForward(p)
	if err != nil {
		m.stats.Unrouted.Add(1)
		return
	}
	m.mu.Lock()
	s := m.byPair[pair]
	m.mu.Unlock()
	if s == nil {
		m.stats.Unrouted.Add(1)
		return
	}
	if !s.initiator && s.isEstablished() && len(inner) > 0 && protocol.Type(inner[0]) == protocol.TypeHandshakeInit && !s.answeredMsg(inner) {
		// The initiator starts over on this pair (its session ended):
		// a new responder session answers; the old one ends when the
		// peer stops using it. The new session belongs to this pair, not
		// to the one the old session was introduced on: a live session
		// rebound to a second introduction (rebind) still holds the
		// first pair in its intro, and a session made from that would
		// answer on a pair the initiator no longer reads, and leave this
		// pair's data to the old session.
		in := s.intro
		in.Pair = pair
		s = m.newSession(in, m.a.log)
	}
	s.fromRelay(pair, inner)
}

// established is called when s's handshake completes.
func (m *peerManager) established(s *peerSession) {
	m.stats.Sessions.Add(1)
	if w := s.want; w != nil {
		w.set(s)
	}
}

// ended is called when s closes.
func (m *peerManager) ended(s *peerSession) {
	m.mu.Lock()
	delete(m.all, s)
	for id, o := range m.byPair {
		if o == s {
			delete(m.byPair, id)
		}
	}
	m.mu.Unlock()
	if w := s.want; w != nil {
		w.clear(s)
	}
}

func (w *peerWant) current() *peerSession {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sess
}

func (w *peerWant) set(s *peerSession) {
	w.mu.Lock()
	old := w.sess
	w.sess, w.status, w.backoff = s, "", 0
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	if old != nil && old != s {
		old.close("replaced by a new session")
	}
}

func (w *peerWant) clear(s *peerSession) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sess == s {
		w.sess = nil
		w.retry = time.Now().Add(time.Second)
		close(w.changed)
		w.changed = make(chan struct{})
	}
}

// failed records why there is no session and when to ask again.
func (w *peerWant) failed(why string, log *slog.Logger) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.backoff = min(max(2*w.backoff, 2*time.Second), time.Minute)
	w.retry = time.Now().Add(w.backoff)
	if w.status != why {
		log.Info("peer not reachable yet", "peer", w.name, "reason", why, "retry_in", w.backoff)
	}
	w.status = why
}

// wait returns the live session, waiting up to d for one.
func (w *peerWant) wait(ctx context.Context, d time.Duration) *peerSession {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		s, ch := w.sess, w.changed
		w.mu.Unlock()
		if s != nil {
			return s
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		case <-deadline.C:
			return nil
		}
	}
}

// lanCandidates is this host's address on the agent's UDP port, the one
// it uses toward the relay (its LAN address behind a NAT): two agents
// behind one NAT meet on the LAN even when the NAT does not hairpin.
// Loopback is offered only when the relay itself is on loopback (tests and
// demos on one machine). (Not every interface: net.Interfaces costs the
// router binary its netlink parser, and the route toward the relay is the
// LAN a peer behind the same NAT shares.)
func (a *Agent) lanCandidates(relay netip.AddrPort) []netip.AddrPort {
	ap := localToward(a.sock.LocalAddr(), relay, a.cfg.Load().ListenPacket == nil)
	ip := ap.Addr().Unmap()
	if !ip.Is4() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || (ip.IsLoopback() && !relay.Addr().IsLoopback()) {
		return nil
	}
	return []netip.AddrPort{netip.AddrPortFrom(ip, ap.Port())}
}

// selfFacts is what this agent knows of its NAT for punching: the last
// measurement, and no UDP while the link is on the TCP fallback in auto
// mode (UDP got no answer).
func (a *Agent) selfFacts() protocol.NATFacts {
	var facts protocol.NATFacts
	if rep, ok := a.state.natReport(); ok {
		facts = protocol.FactsOf(rep)
	}
	if a.state.onTCPFallback() && a.cfg.Load().Transport == TransportAuto {
		facts.UDP = protocol.No
	}
	return facts
}

// onTCPFallback reports whether the relay link is up over TCP.
func (s *state) onTCPFallback() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up && s.transport == string(link.TCP)
}

// natReport returns the last NAT measurement, if any.
func (s *state) natReport() (protocol.NATReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nat, !s.natAt.IsZero()
}

// natChanged re-sends our PeerInfo: new NAT facts change the peers'
// punching strategy.
func (m *peerManager) natChanged() {
	m.mu.Lock()
	l := m.link
	m.mu.Unlock()
	if l != nil {
		l.ctrl.send(m.info(l.conn))
	}
}
