// Package relay is the public end of pinhole. One port number carries
// everything: on UDP the Noise handshakes and the sealed KCP packets of every
// agent (later STUN and forwarded peer datagrams), on TCP the same records
// for agents whose network blocks UDP. For each connected agent the relay
// opens the public ports it asked for, but only those in that agent's
// allow_ports, and turns each inbound connection or UDP flow into one smux
// stream to the agent. It never connects anywhere on an agent's behalf: the
// agent names exposures, the relay names nothing, so it is not an open proxy.
package relay

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/internal/splice"
	"github.com/pinhole/pinhole/internal/udpio"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// Relay serves agents. Create it with New, run it with Run.
type Relay struct {
	stateChanged chan struct{} // a live session came or went (state.go)
	// introMu orders peer introductions and their updates (peers.go):
	// each is built from the relay's state and posted to the agents'
	// outboxes while it is held (outbox.go: posting never blocks), so
	// an introduction built before an agent's NAT facts arrived can never
	// reach the peer after the update that carries them (the peer kept
	// the stale facts and never tried TCP simultaneous open).
	introMu sync.Mutex

	log    *slog.Logger
	cfg    atomic.Pointer[Config]
	replay secure.Replay
	macs   atomic.Pointer[secure.MACChecker] // follows the private key across reloads
	static atomic.Pointer[staticKey]         // the private key, prepared for X25519; so does this
	drops  dropLog
	stun   *stunServer

	udp     net.PacketConn // the UDP socket: uio, which Run closes
	uio     *udpio.Conn    // reads and writes, batched on a real socket
	udpAddr netip.AddrPort
	tcp     net.Listener
	admin   net.Listener

	mu       sync.Mutex // guards the maps below
	byIndex  map[uint32]*session
	live     map[secure.PublicKey]*session
	closing  bool                             // Run is stopping: no session may join any more
	pending  map[secure.PublicKey][]*session  // unconfirmed, oldest first
	answered map[[secure.MACLen]byte]*session // unconfirmed UDP sessions by their initiation's mac1 (resend.go)
	ports    map[portKey]*session
	pairs    map[uint32]*pair      // peer introductions (peers.go)
	waiting  map[string][]*session // askers waiting for an agent to connect, by its name
	sessions sync.WaitGroup
	dups     dupTracker

	refuseTokens atomic.Int64 // Refuse datagrams left this second
	cookieTokens atomic.Int64 // CookieReply datagrams left this second
	handshakes   chan initMsg // UDP handshakes waiting for the handshake workers
	proven       chan initMsg // the same, for handshakes whose mac2 proved their source
	queued       queuedSet    // the sources of what the two queues hold (hsqueue.go)
	limiter      sourceLimiter
	agentsAt     agentsAt // per source IP, for the proven-handshake budget
	stats        Stats
	reclaim      reclaimer // returns what parks and closed sessions freed (reclaim.go)
	acceptor     *acceptor // serves every exposed TCP port (acceptor.go); set by Run
}

// staticKey is the relay's private key prepared for X25519, with the
// static-static DH results of the listed agents that handshook with it
// (one scalar multiplication less per handshake); a new key starts a new
// cache.
type staticKey struct {
	*secure.Keypair
	ss secure.StaticDH
}

// initMsg is a HandshakeInit datagram queued for the handshake workers.
type initMsg struct {
	b      []byte
	from   netip.AddrPort
	proven bool // in the proven queue
}

// Stats are the relay's counters, shown by the admin endpoint.
type Stats struct {
	Handshakes       atomic.Uint64 // accepted
	HandshakeJunk    atomic.Uint64 // failed mac1: junk, or made for another relay key
	HandshakeFailed  atomic.Uint64 // passed mac1 but did not decrypt, or bad version
	UnknownAgent     atomic.Uint64 // authenticated but not listed
	Replayed         atomic.Uint64 // stale timestamp without a valid cookie
	CookiesSent      atomic.Uint64 // handshakes answered with a cookie
	Malformed        atomic.Uint64 // datagrams of no known type or too short
	UnknownSession   atomic.Uint64 // Data for no session
	TCPRejected      atomic.Uint64 // TCP connections that failed the handshake
	Replaced         atomic.Uint64 // sessions closed by a newer one
	PendingDiscarded atomic.Uint64 // unconfirmed sessions dropped
	HandshakeDropped atomic.Uint64 // over a source's budget, or handshake queue full (a flood)
	// HandshakeCoalesced counts retries dropped because an initiation
	// from the same address and port was still queued, or its session
	// already confirmed.
	HandshakeCoalesced atomic.Uint64
	// HandshakeResent counts retries of an answered initiation that got
	// the same answer again instead of a new session.
	HandshakeResent  atomic.Uint64
	DuplicateKey     atomic.Uint64 // sessions closed or refused because two agents share a key
	ExposuresRefused atomic.Uint64 // exposures refused (port not allowed, in use, listen error), retries too
	Tunnels          splice.Stats  // stream resets sent, received, stalled
	FlowsEvicted     atomic.Uint64 // UDP exposure flows ended to make room for a new client
	DatagramsDropped atomic.Uint64 // UDP exposure datagrams dropped: flow queue or exposure budget full
	Peers            PeerStats     // introductions and forwarded peer datagrams
}

const (
	// maxPendingPerKey bounds unconfirmed sessions per agent: the agent
	// retries its handshake once a second, and an answer to any recent
	// retry must still find its session.
	maxPendingPerKey = 4
	// maxPending bounds unconfirmed sessions in all.
	maxPending = 4096
	// confirmTimeout drops a session whose agent never sent a packet.
	confirmTimeout = 15 * time.Second
	// refusePerSecond limits Refuse datagrams so the relay cannot be used
	// to reflect traffic at a spoofed address.
	refusePerSecond = 200
	// cookiesPerSecond limits CookieReply datagrams. They are smaller than
	// the handshakes they answer (no amplification), so the budget only
	// bounds the relay's own work under a flood (a cookie costs a few
	// µs). It is one per agent of a 10,000-router fleet behind one
	// address, all unproven after a restart: at 5,000/s half of such a
	// fleet would wait a retry gap for theirs.
	cookiesPerSecond = 10000
	// handshakeQueue bounds UDP handshakes waiting for the worker. Each
	// costs two X25519 operations, so they run off the socket reader: a
	// flood of forged handshakes fills this queue and is dropped, while
	// established agents' packets keep flowing.
	handshakeQueue = 256
	// provenQueue bounds the queue of handshakes whose mac2 proved their
	// source. Only the per-address proven budgets fill it (an address
	// without agents: 20/s, burst 100; ratelimit.go), so it can be long:
	// after a restart under thousands of agents behind one address, each
	// answers its cookie at once, and a burst the workers could work
	// through in a second or two was cut at 256, the rest dropped
	// unanswered and retried a second or more later, while the workers
	// sat idle in between (5,000 agents came back at 300-500 handshakes a
	// second on a relay using under half a core). 4,096 initiations of
	// 180 bytes are under a MiB, and one to two seconds of work for two
	// cores.
	provenQueue = 4096
)

// New checks cfg and opens the relay's sockets: the UDP and TCP listeners
// on cfg.Listen and the admin endpoint. Nothing is served until Run.
func New(cfg *Config, log *slog.Logger) (*Relay, error) {
	cfg = cfg.withDefaults()
	r := &Relay{log: log, byIndex: map[uint32]*session{}, live: map[secure.PublicKey]*session{},
		pending: map[secure.PublicKey][]*session{}, answered: map[[secure.MACLen]byte]*session{}, ports: map[portKey]*session{}, pairs: map[uint32]*pair{}, waiting: map[string][]*session{},
		handshakes: make(chan initMsg, handshakeQueue), proven: make(chan initMsg, provenQueue),
		drops: dropLog{lg: log}, stateChanged: make(chan struct{}, 1)}
	r.macs.Store(secure.NewMACChecker(cfg.PrivateKey))
	r.static.Store(&staticKey{Keypair: secure.NewKeypair(cfg.PrivateKey)})
	r.cfg.Store(cfg)
	// A full Refuse budget from the start: right after a restart is when
	// agents with stale sessions most need their "unknown session" hint.
	r.refuseTokens.Store(refusePerSecond)
	r.cookieTokens.Store(cookiesPerSecond)
	uc, tl, err := listenPair(cfg)
	if err != nil {
		return nil, err
	}
	if u, ok := uc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(8 << 20)
		_ = u.SetWriteBuffer(8 << 20)
	}
	r.udpAddr, _ = addrPort(uc.LocalAddr())
	r.uio = udpio.New(uc)
	r.uio.NoCoalescing() // a flood must not crowd out the agents' GSO runs
	r.udp, r.tcp = r.uio, tl
	if r.stun, err = newSTUNServer(r, cfg); err != nil {
		r.uio.Close()
		r.tcp.Close()
		return nil, err
	}
	if cfg.Admin != "" {
		if r.admin, err = listenAdmin(cfg.Admin); err != nil {
			r.uio.Close() // the socket and, on a real one, the writer
			r.tcp.Close()
			r.stun.close()
			return nil, err
		}
	}
	return r, nil
}

// listenPair opens UDP and TCP on the same port number. With port 0 the
// kernel picks the UDP port, which TCP may already use; then it tries again.
func listenPair(cfg *Config) (net.PacketConn, net.Listener, error) {
	addr := cfg.Listen
	listenUDP, listenTCP := cfg.ListenPacket, cfg.ListenTCP
	if listenUDP == nil {
		listenUDP = net.ListenPacket
	}
	if listenTCP == nil {
		listenTCP = net.Listen
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	// An IPv4 listen address gets an AF_INET socket, which batches.
	network := "udp"
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() {
		network = "udp4"
	}
	for attempt := 0; ; attempt++ {
		uc, err := listenUDP(network, addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		la, err := addrPort(uc.LocalAddr())
		if err != nil {
			uc.Close()
			return nil, nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		p := la.Port()
		tl, err := listenTCP("tcp", net.JoinHostPort(host, fmt.Sprint(p)))
		if err == nil {
			return uc, tl, nil
		}
		uc.Close()
		if port != "0" || attempt == 20 {
			return nil, nil, fmt.Errorf("listen tcp %s: %w", net.JoinHostPort(host, fmt.Sprint(p)), err)
		}
	}
}

// addrPort reads a socket's address, a *net.UDPAddr for real sockets.
func addrPort(a net.Addr) (netip.AddrPort, error) {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.AddrPort(), nil
	}
	return netip.ParseAddrPort(a.String())
}

// Addr returns the UDP/TCP port the relay listens on.
func (r *Relay) Addr() netip.AddrPort { return r.udpAddr }

// Run serves until ctx ends, then closes every session and port and returns
// after all of its goroutines have stopped.
func (r *Relay) Run(ctx context.Context) error {
	acc, err := newAcceptor()
	if err != nil {
		return err
	}
	r.acceptor = acc
	var wg sync.WaitGroup
	wg.Go(func() { acc.run(ctx) })
	wg.Go(func() { r.readUDP(ctx) })
	wg.Go(func() { r.acceptTCP(ctx) })
	wg.Go(func() { r.refill(ctx) })
	r.handshakeWorkers(ctx, &wg)
	r.stun.serveAlt(ctx, &wg)
	if path := r.cfg.Load().StateFile; path != "" {
		wg.Go(func() { r.keepState(ctx, path) })
	}
	if r.admin != nil {
		wg.Go(func() { r.serveAdmin(ctx) })
	}
	r.log.Info("relay up", "addr", r.udpAddr, "agents", len(r.cfg.Load().Agents))
	<-ctx.Done()
	r.tcp.Close()
	if r.admin != nil {
		r.admin.Close()
	}
	r.mu.Lock()
	r.closing = true // from now on no session joins (join)
	all := make([]*session, 0, len(r.byIndex)+len(r.live))
	for _, s := range r.byIndex {
		if s != nil {
			all = append(all, s)
		}
	}
	for _, s := range r.live {
		all = append(all, s)
	}
	r.mu.Unlock()
	// Tell every agent why, in parallel (each goodbye lingers a round
	// trip), before the UDP socket closes under the goodbyes.
	var bye sync.WaitGroup
	for _, s := range all {
		bye.Go(func() { s.notifyAndClose(protocol.Notice{Code: protocol.NoticeShutdown, Text: "relay shutting down"}) })
	}
	bye.Wait()
	r.stun.delayed.stop() // before the sockets its timers write to close
	r.udp.Close()
	r.stun.close()
	wg.Wait()
	r.sessions.Wait()
	r.log.Info("relay stopped")
	return nil
}

// refill tops up the Refuse budget once a second and sweeps idle entries
// from the handshake rate limiter.
func (r *Relay) refill(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSweep time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r.refuseTokens.Store(refusePerSecond)
			r.cookieTokens.Store(cookiesPerSecond)
			r.limiter.sweep(now)
			r.drops.sweep(now)
			r.stun.sweep(now)
			if now.Sub(lastSweep) > sweepEvery(r.cfg.Load().agentTimeout())-time.Second/2 {
				r.sweepSilent(now)
				lastSweep = now
			}
			r.reclaim.check(now)
		}
	}
}

// sweepEvery is how often sweepSilent looks at every session: a
// twelfth of agent_timeout, from 1 s to 5 s. A look costs about a
// microsecond per session (four structures each, out of cache), which
// once a second was a tenth of an idle relay's CPU with 10,000 agents;
// every 5 s, a dead agent is dropped at most 5 s after its 60 s.
func sweepEvery(timeout time.Duration) time.Duration {
	return min(5*time.Second, max(time.Second, timeout/12))
}

// sweepSilent closes the sessions whose agents have been silent too long
// (session.silent). One sweep every sweepEvery for all sessions, rather than a
// timer per session, keeps a relay with thousands of idle agents idle.
func (r *Relay) sweepSilent(now time.Time) {
	for _, s := range r.liveSessions() {
		if s.silent(now) && !s.noticed.Load() {
			s.log.Info("agent silent, dropping it", "timeout", s.silenceLimit())
			// Counted with the sessions' goroutines, so Run's wait covers it.
			r.sessions.Go(func() { s.notifyAndClose(protocol.Notice{Code: protocol.NoticeIdleTimeout, Text: "no heartbeat"}) })
		}
	}
}

// Reload applies a new configuration: removed agents are disconnected,
// changed allow-lists are enforced on open exposures at once.
func (r *Relay) Reload(cfg *Config) {
	cfg = cfg.withDefaults()
	old := r.cfg.Swap(cfg)
	if old.PrivateKey != cfg.PrivateKey {
		r.macs.Store(secure.NewMACChecker(cfg.PrivateKey))
		r.static.Store(&staticKey{Keypair: secure.NewKeypair(cfg.PrivateKey)})
	}
	if old.Listen != cfg.Listen {
		r.log.Warn("listen address change needs a restart; keeping the old one", "old", old.Listen, "new", cfg.Listen)
	}
	for _, s := range r.liveSessions() {
		entry := cfg.agentByKey(s.key)
		if entry == nil {
			r.replay.Forget(s.key)
			s.log.Info("agent key removed from config, disconnecting")
			s.notifyAndClose(noticeKeyRemoved())
			continue
		}
		s.reconfigure(entry)
	}
	r.log.Info("relay config reloaded", "agents", len(cfg.Agents))
}

// liveSessions returns a snapshot of the live sessions, so callers can
// act on them without holding mu.
func (r *Relay) liveSessions() []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := make([]*session, 0, len(r.live))
	for _, s := range r.live {
		live = append(live, s)
	}
	return live
}

func (r *Relay) newIndexLocked() uint32 {
	for {
		var b [4]byte
		rand.Read(b[:])
		idx := binary.BigEndian.Uint32(b[:])
		if _, taken := r.byIndex[idx]; !taken && idx != 0 {
			return idx
		}
	}
}

// errClosed is the normal end of a listener after Run stops.
func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
