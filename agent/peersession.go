package agent

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pinhole/pinhole/agent/internal/expose"
	"github.com/pinhole/pinhole/agent/internal/relaylink"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/internal/splice"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
	"github.com/xtaci/smux"
)

// peerHandshakeWait bounds the handshake through the relay (one initiation
// a second until then).
const peerHandshakeWait = 10 * time.Second

// peerSession is one end-to-end session with a peer agent: a Noise IK
// handshake through the relay, then KCP and smux over a link.PacketConn
// whose path is the relay (forwarded datagrams) or direct (punched).
type peerSession struct {
	m         *peerManager
	log       *slog.Logger
	name      string
	key       secure.PublicKey
	initiator bool
	want      *peerWant // the initiator's connect target
	facts     protocol.NATFacts
	startIn   time.Duration
	created   time.Time
	intro     protocol.PeerIntro // as the relay introduced the peer

	mu        sync.Mutex
	pair      uint32           // the relay path's pair id (0: no relay path)
	cands     []netip.AddrPort // the peer's candidates, reflexive first
	localIdx  uint32
	init      *secure.Initiation
	initMsg   []byte
	answered  []byte // responder: the initiation answered, and
	respMsg   []byte // the answer, sent again if the initiation is
	pc        *link.PacketConn
	lk        *link.Link
	ctrl      *smux.Stream
	tn        *splice.Tunnels
	path      pathState
	via       map[netip.AddrPort]net.PacketConn // birthday sockets by the peer address they reach
	kept      []net.PacketConn                  // birthday sockets carrying the direct path
	tcp       *tcpPath                          // a punched TCP connection (tcppunch.go)
	hint      netip.AddrPort                    // the peer's freshest mapping (sequential NATs)
	hintAt    time.Time
	closed    bool
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	ctrlMu    sync.Mutex
	establish chan struct{} // closed when the handshake completes
}

func newPeerSession(m *peerManager, in protocol.PeerIntro, log *slog.Logger) *peerSession {
	ctx, cancel := context.WithCancel(context.Background())
	s := &peerSession{m: m, name: in.Peer, key: secure.PublicKey(in.Key), initiator: in.Initiator, facts: in.Facts,
		startIn: in.StartIn, created: time.Now(), pair: in.Pair, cands: in.Candidates, intro: in,
		ctx: ctx, cancel: cancel, establish: make(chan struct{}),
		log: log.With("peer", in.Peer)}
	// A session never handshaken is dropped after the wait.
	time.AfterFunc(2*peerHandshakeWait, func() {
		select {
		case <-s.establish:
		default:
			s.close("no handshake")
		}
	})
	return s
}

func (s *peerSession) currentPair() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pair
}

// isEstablished reports whether the handshake completed.
func (s *peerSession) isEstablished() bool {
	select {
	case <-s.establish:
		return true
	default:
		return false
	}
}

// answeredMsg reports whether msg is the initiation this responder answered.
func (s *peerSession) answeredMsg(msg []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered != nil && string(s.answered) == string(msg)
}

// hasRelay reports whether the session has a relay path.
func (s *peerSession) hasRelay() bool { return s.currentPair() != 0 }

// setPair gives the session the relay path of a new introduction.
func (s *peerSession) setPair(in protocol.PeerIntro) {
	s.mu.Lock()
	s.pair = in.Pair
	s.mu.Unlock()
	s.update(in)
}

// update takes the peer's new candidates and NAT facts; a session without
// a direct path punches again at once with them.
func (s *peerSession) update(in protocol.PeerIntro) {
	s.mu.Lock()
	changed := s.facts != in.Facts || !slices.Equal(s.cands, in.Candidates)
	s.cands, s.facts = in.Candidates, in.Facts
	if changed && !s.path.direct.IsValid() {
		s.path.nextTry = time.Time{}
	}
	s.mu.Unlock()
}

// relayGone removes the relay path; without a direct one the session ends.
func (s *peerSession) relayGone() {
	s.mu.Lock()
	s.pair = 0
	direct := s.path.direct.IsValid() && s.pc != nil && !s.pc.UsingRelay()
	s.mu.Unlock()
	if !direct {
		s.close("relay path gone and no direct path")
	}
}

// startHandshake sends initiations through the relay until answered
// (initiator side): again after 100 ms, then at doubling intervals up to
// one a second. The first one often overtakes the relay's introduction on
// the way to the peer (the introduction is a control message, the
// initiation a bare datagram), and the peer drops what it cannot route
// yet; a fixed second between tries made that a second before the first
// byte.
func (s *peerSession) startHandshake() {
	cfg := s.m.a.cfg.Load()
	idx := relaylink.NewIndex()
	in, msg, err := secure.Initiate(cfg.PrivateKey, s.key, idx, secure.Timestamp(time.Now()), secure.Cookie{})
	if err != nil {
		s.close("handshake: " + err.Error())
		return
	}
	s.mu.Lock()
	s.localIdx, s.init, s.initMsg = idx, in, msg
	s.mu.Unlock()
	s.wg.Go(func() {
		every := 100 * time.Millisecond
		t := time.NewTimer(every)
		defer t.Stop()
		deadline := time.Now().Add(peerHandshakeWait)
		for {
			if pair := s.currentPair(); pair != 0 {
				s.m.forward(pair, msg)
			}
			select {
			case <-s.establish:
				return
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
			every = min(2*every, time.Second)
			t.Reset(every)
			if time.Now().After(deadline) {
				if s.want != nil {
					s.want.failed("peer did not answer the handshake", s.log)
				}
				s.close("handshake unanswered")
				return
			}
		}
	})
}

// fromRelay takes a datagram of this session that the relay forwarded.
func (s *peerSession) fromRelay(pair uint32, b []byte) {
	t, err := protocol.Classify(b)
	if err != nil {
		s.m.stats.BadHello.Add(1)
		return
	}
	switch t {
	case protocol.TypeData:
		s.mu.Lock()
		pc := s.pc
		s.mu.Unlock()
		if pc != nil {
			pc.DeliverRelayed(b)
		}
	case protocol.TypeHandshakeInit:
		if !s.initiator {
			s.answer(pair, b)
		}
	case protocol.TypeHandshakeResp:
		if s.initiator {
			s.finish(b)
		}
	default:
		s.m.stats.BadHello.Add(1)
	}
}

// answer handles an initiation (responder side).
func (s *peerSession) answer(pair uint32, msg []byte) {
	s.mu.Lock()
	if s.answered != nil {
		again := string(msg) == string(s.answered)
		resp := s.respMsg
		s.mu.Unlock()
		if again { // our answer was lost
			s.m.forward(pair, resp)
		} else {
			s.m.stats.BadHello.Add(1)
		}
		return
	}
	s.mu.Unlock()
	cfg := s.m.a.cfg.Load()
	r, err := secure.Consume(cfg.PrivateKey, msg)
	if err != nil || r.Peer != s.key {
		s.m.stats.BadHello.Add(1)
		s.log.Warn("peer handshake refused", "err", err, "key_matches", err == nil && r.Peer == s.key)
		return
	}
	if !s.m.replay.Fresh(r.Peer, r.Timestamp) {
		s.m.stats.BadHello.Add(1)
		s.log.Warn("peer handshake refused: replayed or older than the last one")
		return
	}
	idx := relaylink.NewIndex()
	sess, resp, err := r.Respond(idx, nil)
	if err != nil {
		return
	}
	s.m.replay.Confirm(r.Peer, r.Timestamp)
	s.mu.Lock()
	s.localIdx, s.answered, s.respMsg = idx, append([]byte(nil), msg...), resp
	s.mu.Unlock()
	s.m.forward(pair, resp)
	s.start(sess, r.PeerIndex)
}

// finish handles the responder's answer (initiator side).
func (s *peerSession) finish(msg []byte) {
	s.mu.Lock()
	in, done := s.init, s.pc != nil
	s.mu.Unlock()
	if in == nil || done {
		return
	}
	sess, _, err := in.Finish(msg)
	if err != nil {
		s.m.stats.BadHello.Add(1)
		return
	}
	s.start(sess, sess.LocalIndex)
}

// start runs KCP and smux over the new session, on the relay path first.
func (s *peerSession) start(sess *secure.Session, conv uint32) {
	a := s.m.a
	pc := link.NewPacketConn(sess, netip.AddrPort{}, s.sendDirect, nil, s.onDirect)
	pc.SetRelayPath(func(b []byte) error {
		pair := s.currentPair()
		if pair == 0 {
			return errNoRelayPath
		}
		return s.m.forward(pair, b)
	})
	pc.UseRelay(true)
	lk, err := link.NewUDPLink(pc, conv, a.cfg.Load().Tuning, !s.initiator)
	if err != nil {
		s.close("start: " + err.Error())
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		lk.Close()
		return
	}
	s.pc, s.lk = pc, lk
	s.mu.Unlock()
	a.sock.Attach(sess.LocalIndex, pc, nil)
	s.tn = splice.NewTunnels(splice.NewGuard(a.cfg.Load().Tuning.StallSlots()), &a.stats.Tunnels, s.sendReset)
	s.tn.SetArrivals(lk.Arrivals())
	close(s.establish)
	s.log.Info("peer session established", "path", "relay", "initiator", s.initiator,
		"handshake", time.Since(s.created).Round(time.Millisecond))
	if s.initiator {
		// The control stream must be the first the responder accepts:
		// open it before clients may open theirs.
		st, err := lk.OpenStream()
		if err != nil {
			s.close("open control stream: " + err.Error())
			return
		}
		s.setCtrl(st)
		s.wg.Go(s.readCtrl)
	} else {
		s.wg.Go(s.acceptStreams)
	}
	s.m.established(s)
	s.wg.Go(s.pathLoop)
}

var errNoRelayPath = errors.New("no relay path")

func (s *peerSession) setCtrl(st *smux.Stream) {
	s.mu.Lock()
	s.ctrl = st
	s.mu.Unlock()
}

// sendReset tells the peer a tunneled stream was aborted.
func (s *peerSession) sendReset(m protocol.Reset) error { return s.sendCtrl(m) }

// sendCtrl writes a message on the session's control stream.
func (s *peerSession) sendCtrl(m protocol.Message) error {
	s.mu.Lock()
	st := s.ctrl
	s.mu.Unlock()
	if st == nil {
		return errNoControl
	}
	s.ctrlMu.Lock()
	defer s.ctrlMu.Unlock()
	st.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return protocol.WriteMessage(st, m)
}

var errNoControl = errors.New("no control stream")

// readCtrl reads the peer's Resets until the session ends.
func (s *peerSession) readCtrl() {
	defer s.close("control stream ended")
	for {
		m, err := protocol.ReadMessage(s.ctrl)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case protocol.Reset:
			s.tn.Reset(m.Stream)
		case protocol.PeerInfo:
			// A punching hint: the peer's newest mapping (peerpath.go).
			if len(m.Candidates) > 0 {
				s.mu.Lock()
				s.hint, s.hintAt = m.Candidates[0], time.Now()
				s.mu.Unlock()
			}
		}
	}
}

// acceptStreams serves the initiator's streams (responder side): the
// first is the control stream, each other one a connection to a service
// the peer may use.
func (s *peerSession) acceptStreams() {
	defer s.close("peer closed the session")
	a := s.m.a
	for {
		st, err := s.lk.AcceptStream()
		if err != nil {
			return
		}
		s.mu.Lock()
		first := s.ctrl == nil
		s.mu.Unlock()
		if first {
			s.setCtrl(st)
			s.wg.Go(s.readCtrl)
			continue
		}
		a.streams.Go(func() {
			st.SetReadDeadline(time.Now().Add(10 * time.Second))
			h, err := protocol.ReadStreamHeader(st)
			if err != nil {
				s.tn.Refuse(st, protocol.ResetAborted)
				return
			}
			st.SetReadDeadline(time.Time{})
			svc := (*a.services.Load())[h.Exposure]
			if svc == nil || !s.m.mayUse(s.name, h.Exposure) {
				s.m.stats.Refused.Add(1)
				s.log.Warn("peer asked for a service it may not use", "exposure", h.Exposure)
				s.tn.Refuse(st, protocol.ResetAborted)
				return
			}
			expose.Serve(s.ctx, st, h, svc, s.tn, &a.streams, &a.stats, s.log)
		})
	}
}

// open opens a stream to the peer's service (initiator side).
func (s *peerSession) open(h protocol.StreamHeader) (*smux.Stream, error) {
	st, err := s.lk.OpenStream()
	if err != nil {
		return nil, err
	}
	st.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := st.Write(protocol.AppendStreamHeader(nil, h)); err != nil {
		st.Close()
		return nil, err
	}
	st.SetWriteDeadline(time.Time{})
	return st, nil
}

// close ends the session and everything on it.
func (s *peerSession) close(why string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	lk := s.lk
	idx := s.localIdx
	kept := s.kept
	s.mu.Unlock()
	for _, c := range kept {
		c.Close()
	}
	s.cancel()
	if lk != nil {
		lk.Close()
		s.m.a.sock.Unregister(idx)
		s.log.Info("peer session closed", "reason", why)
	}
	s.m.ended(s)
}
