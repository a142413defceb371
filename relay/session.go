package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/internal/splice"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// session is one agent's link, from handshake to close. It becomes live
// (visible to the registry, allowed to hold ports) when the agent opens the
// control stream, which proves it holds the session keys.
type session struct {
	r         *Relay
	log       *slog.Logger
	key       secure.PublicKey
	entry     atomic.Pointer[AgentEntry]
	index     uint32
	transport link.Transport
	addr      netip.AddrPort
	pc        *link.PacketConn // UDP only
	link      *link.Link
	started   time.Time
	ts        [secure.TimestampLen]byte // of the handshake, recorded on confirmation
	evicted   bool                      // by a fresher handshake, before confirmation; guarded by r.mu
	peerIndex uint32                    // the agent's index in its initiation (UDP)
	m2        []byte                    // the answer to it, sent again to its retries (UDP; set before the session is pending)
	m1        []byte                    // the initiation answered, whose copies get m2 again until confirmed (UDP; resend.go); guarded by r.mu
	mac1      [secure.MACLen]byte       // m1's mac1, its key in r.answered
	cached    bool                      // in r.answered; guarded by r.mu
	resends   int                       // copies of m1 answered; guarded by r.mu

	ctrlMu sync.Mutex // serialises control writes
	ctrl   link.Conn
	out    outbox // control messages posted to send in order without blocking the poster (outbox.go)

	expMu     sync.Mutex // guards exposures and refused
	exposures map[string]*exposure
	refused   map[string]protocol.Status // the last refusal logged per exposure name

	// tunnels knows the streams this session opened, for Resets both
	// ways, and bounds what stalled ones may hold.
	tunnels *splice.Tunnels

	peers peerState        // introductions; guarded by r.mu
	held  map[portKey]bool // the ports this session reserved in r.ports; guarded by r.mu

	confirmed atomic.Bool
	twin      atomic.Bool // refused: another agent holds the key (closed quietly)
	noticed   atomic.Bool // a goodbye notice was sent
	lastMsg   atomic.Int64
	hello     atomic.Pointer[protocol.Hello]
	heartbeat atomic.Int64 // the agent's announced interval (ns)
	closeOnce sync.Once
	done      chan struct{}
}

func newSession(r *Relay, entry *AgentEntry, index uint32, t link.Transport, addr netip.AddrPort, ts [secure.TimestampLen]byte) *session {
	s := &session{r: r, key: entry.PublicKey, index: index, transport: t, addr: addr, started: time.Now(), ts: ts,
		exposures: map[string]*exposure{}, held: map[portKey]bool{}, done: make(chan struct{}),
		log: r.log.With("agent", entry.Name, "transport", t)}
	s.entry.Store(entry)
	s.tunnels = splice.NewTunnels(splice.NewGuard(r.cfg.Load().Tuning.StallSlots()), &r.stats.Tunnels,
		func(m protocol.Reset) error { return s.send(m) })
	return s
}

func noticeKeyRemoved() protocol.Notice {
	return protocol.Notice{Code: protocol.NoticeKeyRemoved, Text: "this agent's key is no longer listed on the relay"}
}

// run serves the session until the link ends or ctx is done.
func (s *session) run(ctx context.Context) {
	defer func() {
		s.shutdown("")
		s.tunnels.LinkDown()
		s.tunnels.Wait()
	}()

	s.link.SetForwardHandler(s.forward)
	s.tunnels.SetArrivals(s.link.Arrivals())
	ctrl, err := s.link.AcceptControl(confirmTimeout)
	if err != nil {
		s.r.stats.PendingDiscarded.Add(1)
		s.log.Debug("session never confirmed", "addr", s.addr)
		return
	}
	s.ctrl = ctrl
	s.confirmed.Store(true)
	if !s.r.activate(s) {
		return
	}

	ctrl.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := protocol.ReadMessage(ctrl)
	hello, ok := m.(protocol.Hello)
	if err != nil || !ok {
		s.log.Warn("agent did not say hello", "err", err)
		return
	}
	ctrl.SetReadDeadline(time.Time{})
	s.log.Info("agent connected", "addr", s.addr, "name", hello.Name, "software", hello.Software)
	s.touch()

	var wg sync.WaitGroup
	s.setHeartbeat(hello.Heartbeat)
	s.hello.Store(&hello) // from here on, the relay's sweep watches for silence
	wg.Go(func() { s.r.introduceWaiting(s) })
	defer wg.Wait()

	for {
		m, err := protocol.ReadMessage(ctrl)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, link.ErrPeerClosed) && !s.link.IsClosed() {
				s.log.Warn("control stream", "err", err)
			}
			return
		}
		s.touch()
		switch m := m.(type) {
		case protocol.Register:
			reply := s.apply(m.Exposures)
			s.send(reply)
		case protocol.Ping:
			hb := protocol.Heartbeat(m)
			if s.pc != nil {
				hb.Observed = s.pc.Peer()
			} else {
				hb.Observed = s.addr
			}
			s.send(protocol.Pong(hb))
		case protocol.Pong:
		case protocol.SetHeartbeat:
			s.setHeartbeat(m.Interval)
		case protocol.Reset:
			s.tunnels.Reset(m.Stream)
		case protocol.PeerInfo:
			s.setPeerInfo(m)
		case protocol.PeerConnect:
			s.introduce(m)
		case protocol.Notice:
			s.log.Info("agent is leaving", "reason", m.Text)
			return
		default:
			s.log.Warn("unexpected control message", "type", m.Type())
			s.notifyAndClose(protocol.Notice{Code: protocol.NoticeBadMessage, Text: "unexpected " + m.Type().String()})
			return
		}
	}
}

func (s *session) touch() { s.lastMsg.Store(time.Now().UnixNano()) }

// lastHeard is when the agent last sent anything: a control message or
// any authenticated packet of its link.
func (s *session) lastHeard() time.Time {
	return time.Unix(0, max(s.lastMsg.Load(), s.link.LastReceive().UnixNano()))
}

// silent reports whether the agent has been silent longer than
// agent_timeout at now: its router may have lost power, and its ports must
// be freed for its next session. An agent that announced a long heartbeat
// interval gets three of its intervals (plus slack) instead. Silence is
// no authenticated packet at all, not no control message: an agent skips
// its Pings while its tunnels carry traffic (which refreshes its NAT
// mapping), and that traffic, or KCP's ACKs of what the relay sends, is
// as good a sign of life. The relay's sweep (Relay.sweepSilent) asks every
// second, for sessions that said hello.
func (s *session) silent(now time.Time) bool {
	return s.hello.Load() != nil && now.Sub(s.lastHeard()) > s.silenceLimit()
}

// silenceLimit is agent_timeout, or longer for an agent whose announced
// heartbeat interval needs more (protocol.SilenceLimit): heartbeats tuned
// to a long NAT mapping lifetime must not get the agent dropped.
func (s *session) silenceLimit() time.Duration {
	return max(s.r.cfg.Load().agentTimeout(), protocol.SilenceLimit(time.Duration(s.heartbeat.Load())))
}

// setHeartbeat records the agent's announced interval.
func (s *session) setHeartbeat(d time.Duration) {
	if old := time.Duration(s.heartbeat.Swap(int64(d))); old != d && protocol.SilenceLimit(d) > s.r.cfg.Load().agentTimeout() {
		s.log.Info("agent heartbeats are slower than agent_timeout allows; waiting longer for it", "heartbeat", d, "timeout", protocol.SilenceLimit(d))
	}
}

// errNoControl: the session has no control stream (yet).
var errNoControl = errors.New("no control stream")

// send writes a control message; failures surface as the link closing,
// and callers that must know (Reset) get the error.
func (s *session) send(m protocol.Message) error {
	if s.ctrl == nil {
		return errNoControl
	}
	s.ctrlMu.Lock()
	defer s.ctrlMu.Unlock()
	s.ctrl.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err := protocol.WriteMessage(s.ctrl, m)
	if err != nil {
		s.log.Debug("write control message", "type", m.Type(), "err", err)
	}
	return err
}

// notifyAndClose tells the agent why, then closes the session.
func (s *session) notifyAndClose(n protocol.Notice) {
	if !s.noticed.CompareAndSwap(false, true) {
		return
	}
	s.send(n)
	if s.link != nil {
		s.link.Linger(300 * time.Millisecond)
	}
	s.shutdown(n.Text)
}

// shutdown closes the exposures (freeing their ports at once, before a
// replacing session registers the same ports), then the link.
func (s *session) shutdown(reason string) {
	s.closeOnce.Do(func() {
		s.expMu.Lock()
		for name, e := range s.exposures {
			e.close()
			delete(s.exposures, name)
		}
		s.expMu.Unlock()
		if s.link != nil {
			s.link.Close()
		}
		s.r.release(s)
		close(s.done)
		if s.confirmed.Load() {
			s.r.reclaim.add(closedSessionBytes)
			lvl := slog.LevelInfo
			if s.twin.Load() {
				lvl = slog.LevelDebug // the duplicate key was logged once; the twin retries every reconnect_max
			}
			s.log.Log(context.Background(), lvl, "agent disconnected", "reason", reason, "connected_for", time.Since(s.started).Round(time.Second))
		}
	})
}

// activate makes s the live session of its key; an older one is closed
// first (its ports freed), so two sessions never hold the same agent's ports.
// When two agents share the key (see dupTracker), a newcomer does not
// displace a healthy session: it is told why and closed, and activate
// returns false. It also returns false when s was evicted by a fresher
// handshake before it could be confirmed.
func (r *Relay) activate(s *session) bool {
	now := time.Now()
	r.mu.Lock()
	if s.evicted {
		r.mu.Unlock()
		return false
	}
	r.dropPendingLocked(s)
	s.m1 = nil // confirmed: its copies are dropped from now on (resend.go)
	old := r.live[s.key]
	if old != nil && old != s && !sameAgentAddr(old.peer(), s.peer()) && old.healthy(now) && r.dups.flagged(s.key, now) {
		r.mu.Unlock()
		r.stats.DuplicateKey.Add(1)
		s.log.Debug("second agent with the same key refused", "addr", s.peer(), "live", old.peer())
		s.twin.Store(true)
		s.notifyAndClose(noticeDuplicateKey(s.peer(), old.peer()))
		return false
	}
	r.live[s.key] = s
	r.changedState()
	r.agentsAt.add(s.addr.Addr().Unmap())
	if old != nil && old != s {
		r.agentsAt.remove(old.addr.Addr().Unmap())
	}
	r.replay.Confirm(s.key, s.ts)
	r.mu.Unlock()
	if old != nil && old != s {
		r.stats.Replaced.Add(1)
		n := protocol.Notice{Code: protocol.NoticeReplaced, Text: "a newer session with the same key connected"}
		if dup, first := r.dups.replaced(s.key, old.peer(), s.peer(), now); dup {
			r.stats.DuplicateKey.Add(1)
			n = noticeDuplicateKey(old.peer(), s.peer())
			if first {
				r.log.Warn(fmt.Sprintf("two agents appear to use the key of %s (addresses %s and %s); keeping one", s.entry.Load().Name, old.peer(), s.peer()),
					"agent", s.entry.Load().Name, "key", s.key.String())
			}
		}
		old.log.Info("session replaced by a newer one", "addr", s.addr)
		old.notifyAndClose(n)
		// The old session may have been closing already (notifyAndClose
		// then returns at once): wait until its ports are free.
		<-old.done
	}
	return true
}

// release forgets s in every map.
func (r *Relay) release(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer tellGone(s.dropPairsLocked()) // sends on other goroutines
	if cur, ok := r.byIndex[s.index]; ok && (cur == s || cur == nil) {
		delete(r.byIndex, s.index)
	}
	if !s.confirmed.Load() {
		r.dropPendingLocked(s)
	}
	r.forgetAnsweredLocked(s)
	if r.live[s.key] == s {
		delete(r.live, s.key)
		r.changedState()
		r.agentsAt.remove(s.addr.Addr().Unmap())
	}
	for k := range s.held { // not all of r.ports: a relay stopping under 10,000 agents releases them all
		if r.ports[k] == s {
			delete(r.ports, k)
		}
	}
	clear(s.held)
}
