package agent

// All of the agent's timer policy lives here (as in wireguard-go's
// device/timers.go): how often it pings, when a missed answer makes it
// probe faster, when a link counts as dead, how reconnects and refused
// exposures back off. Each number says where it comes from.

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/pinhole/pinhole/agent/internal/relaylink"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/protocol"
)

// Control-plane deadlines: how long one step of talking to the relay or a
// peer may take before it counts as failed.
const (
	// controlWriteWait bounds writing one control message (a stalled
	// link is the liveness checks' business, not a writer's).
	controlWriteWait = 10 * time.Second
	// streamHeaderWait bounds reading the header of a stream the relay or
	// a peer opened.
	streamHeaderWait = 10 * time.Second
	// relayDialWait bounds one dial of a relay: UDP, the TCP fallback
	// and the handshake on whichever answers. A relay that answers
	// nothing is left much sooner (3 s of UDP and 10 s of TCP, or 20 s
	// UDP-only); the bound is for one that answered with a cookie and is
	// working through a reconnect storm (relaylink's busyWait, 60 s).
	relayDialWait = 75 * time.Second
	// connectWait bounds how long a local client waits for the peer
	// session (the relay introduction and one handshake through it).
	connectWait = 10 * time.Second
	// udpConnectIdle ends a local UDP client's flow after this much
	// silence.
	udpConnectIdle = time.Minute
)

const (
	// defaultHeartbeat is the Ping interval without a configured one,
	// shared with the relay (protocol.DefaultHeartbeat). It no longer
	// bounds failure detection (fast probes do), only how soon an idle
	// link notices.
	defaultHeartbeat = protocol.DefaultHeartbeat

	// minAnswerWait is the least time a Ping (or Register) waits for any
	// authenticated packet back before the agent starts fast probes;
	// answerRTTs round trips of the measured RTT if that is longer, so a
	// slow satellite uplink is not taken for a dead relay. KCP
	// retransmits a lost segment within a few RTOs, well inside this.
	minAnswerWait = time.Second
	answerRTTs    = 3

	// fastProbeInterval is the Ping interval once an answer is missed,
	// and fastProbeWindow how long fast probes go unanswered before the
	// link is dead: 5 probes, so a lossy uplink that drops one or two
	// round trips keeps its link, while a dead relay is left
	// minAnswerWait + fastProbeWindow (6 s) after the first missed answer,
	// whatever the heartbeat interval.
	fastProbeInterval = time.Second
	fastProbeWindow   = 5 * time.Second

	// Reconnect backoff after a registered link is lost: once at once
	// (plus up to immediateSpread, so agents dropped together by one
	// relay restart do not return in lockstep), then outageFastEvery
	// apart for the first outageFast of the outage (a relay restart takes
	// seconds), outageSlowEvery apart until outageSlow, then doubling up
	// to reconnect_max. Each dial already re-sends its UDP handshake while
	// it waits (after 1 s, then at gaps growing by half to 4 s, relaylink's
	// retry.go), so a relay that comes back is found within a few seconds.
	immediateSpread = 250 * time.Millisecond
	outageFastEvery = time.Second
	outageFast      = 10 * time.Second
	outageSlowEvery = 2 * time.Second
	outageSlow      = 30 * time.Second
	// minLinkLife: a link that ended sooner than this does not restart the
	// schedule small, so a relay that accepts and then drops the agent at
	// once is not hammered.
	minLinkLife = time.Second

	// Refused exposures (port in use, listen error) are re-registered
	// after refusedRetryMin, doubling to refusedRetryMax: another
	// process's port is usually freed within seconds (a restart) or not
	// for a long time, and a Register costs the relay one listen call.
	refusedRetryMin = time.Second
	refusedRetryMax = 30 * time.Second

	// jitterFraction spreads every periodic timer by ±20 %, so a fleet of
	// agents does not act in lockstep.
	jitterFraction = 0.2

	// heartbeat auto (Config.Heartbeat 0). The NAT drops an idle mapping
	// after its lifetime (RFC 4787 REQ-5 asks for 2 minutes at least;
	// home routers often keep 30 s), and the relay's answers may not
	// refresh it (REQ-6 leaves that to the NAT), so the agent's own
	// datagrams must. Until the lifetime L is measured the interval is
	// defaultHeartbeat; then it is lifetimeShare × L. The measured L is a
	// lower bound within 10 % (netcheck's schedule), and beatJitter only
	// shortens a gap, so the longest gap is 0.8 L; the remaining fifth
	// covers a lost Ping (the fast probe follows answerWait later, at
	// least 1 s: 2 s of room behind a 10 s NAT) and the NAT's timer
	// granularity. The mean gap, 0.95 × 0.8 = 0.76 of the measured L and
	// so at least 0.69 L, keeps the keepalives within 1.45 times the
	// minimum (one per L).
	lifetimeShare = 0.8
	// beatJitter spreads each heartbeat gap over [1-beatJitter, 1] of the
	// interval: downward only, so a gap never outlasts the interval, and
	// 10 % is enough to keep a fleet of agents out of lockstep.
	beatJitter = 0.1
	// defaultHeartbeatMin keeps an agent behind a very short-lived NAT
	// from pinging more than every 5 s (720 Pings an hour; a mapping
	// shorter than about 6 s is left to reconnects) while a 10 s NAT,
	// which some CGNATs and old routers keep, is still outrun (8 s);
	// defaultHeartbeatMax keeps a dead relay noticed within minutes even
	// behind a NAT that never forgets.
	defaultHeartbeatMin = 5 * time.Second
	defaultHeartbeatMax = 5 * time.Minute

	// A Ping's exchange (the Ping, the Pong, KCP's ACK of the Pong) is
	// over within one round trip when nothing is lost; what the link
	// sends within keepaliveRTTs round trips plus keepaliveSlack (a busy
	// router's scheduling), at least minKeepaliveWindow, is not traffic
	// that lets a beat be skipped. A retransmitted Ping after that is:
	// it refreshed the mapping as well as any datagram.
	keepaliveRTTs      = 2
	keepaliveSlack     = 100 * time.Millisecond
	minKeepaliveWindow = 200 * time.Millisecond
)

// heartbeatAuto reports whether the interval follows the measured mapping
// lifetime.
func (c *Config) heartbeatAuto() bool { return c.Heartbeat <= 0 }

func (c *Config) heartbeatMin() time.Duration {
	if c.HeartbeatMin > 0 {
		return c.HeartbeatMin
	}
	return defaultHeartbeatMin
}

func (c *Config) heartbeatMax() time.Duration {
	if c.HeartbeatMax > 0 {
		return max(c.HeartbeatMax, c.heartbeatMin())
	}
	return max(defaultHeartbeatMax, c.heartbeatMin())
}

// heartbeatFor is the Ping interval given the measured mapping lifetime
// (0: not measured, shortLifetime: shorter than every probe).
func (c *Config) heartbeatFor(lifetime time.Duration) time.Duration {
	clamp := func(d time.Duration) time.Duration { return min(c.heartbeatMax(), max(c.heartbeatMin(), d)) }
	switch {
	case c.Heartbeat > 0:
		return c.Heartbeat
	case lifetime == 0:
		return clamp(defaultHeartbeat)
	case lifetime < 0:
		return c.heartbeatMin()
	}
	return clamp(time.Duration(lifetimeShare * float64(lifetime)))
}

// shortLifetime records a mapping that expired before the shortest probe.
const shortLifetime = -1

// heartbeat is the agent's Ping interval now.
func (a *Agent) heartbeatNow() time.Duration {
	return a.cfg.Load().heartbeatFor(a.state.mappingLifetime())
}

// setLifetime records a measured mapping lifetime (0: forget it) and has
// the link announce and apply the new interval.
func (a *Agent) setLifetime(l time.Duration) {
	before := a.heartbeatNow()
	a.state.setLifetime(l)
	if hb := a.heartbeatNow(); hb != before {
		a.log.Info("heartbeat tuned to the NAT's mapping lifetime", "lifetime", l, "heartbeat", hb)
		select {
		case a.retune <- struct{}{}:
		default:
		}
	}
}

// unmeasured is what the interval may be while the lifetime is measured
// again (another network, or a link that died by silence): never longer
// than the safe default, so a shorter-lived NAT is not outlasted
// meanwhile; a shorter interval already chosen stays.
func (a *Agent) unmeasured() {
	if a.cfg.Load().heartbeatFor(a.state.mappingLifetime()) > a.cfg.Load().heartbeatFor(0) {
		a.setLifetime(0)
	}
}

func (c *Config) reconnectMax() time.Duration {
	if c.ReconnectMax > 0 {
		return c.ReconnectMax
	}
	return 30 * time.Second
}

func (c *Config) udpProbe() time.Duration {
	if c.UDPProbe > 0 {
		return c.UDPProbe
	}
	return time.Minute
}

// jitter spreads d by ±jitterFraction.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 - jitterFraction + 2*jitterFraction*rand.Float64()))
}

// beatGap is one heartbeat gap: the interval shortened by up to beatJitter.
func beatGap(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 - beatJitter*rand.Float64()))
}

// keepaliveWindow is how long after a Ping the link's sends are that
// Ping's exchange.
func keepaliveWindow(rtt time.Duration) time.Duration {
	return max(minKeepaliveWindow, keepaliveRTTs*rtt+keepaliveSlack)
}

// answerWait is how long a request waits for an answer before fast probes.
func answerWait(rtt time.Duration) time.Duration {
	return max(minAnswerWait, answerRTTs*rtt)
}

// liveness decides, for one link, when to ping and when the relay is dead.
// It is a plain state machine (no timers, no clock of its own) so that it
// can be tested with made-up times; heartbeat drives it.
//
// While answers arrive it pings once per (jittered) interval and nothing
// else. A beat is skipped when the link sent traffic of its own since the
// last beat (it refreshed the NAT mapping already) and the relay
// answered it (it is alive): the next beat is then due an interval after
// that traffic. A request unanswered (no authenticated packet at
// all) within answerWait starts fast probes; fastProbeWindow of fast
// probes without a packet from the relay ends the link.
type liveness struct {
	interval time.Duration // from the config
	nextPing time.Time     // when the next regular Ping is due
	beat     time.Time     // the last beat: a Ping sent or skipped
	waiting  time.Time     // when the oldest unanswered request went out (zero: none)
	probing  time.Time     // when fast probes began (zero: not probing)
	skipped  uint64        // beats skipped for traffic
}

// verdict is what the heartbeat does now.
type verdict int

const (
	idle verdict = iota
	sendPing
	dead
)

// sent records a request other than a Ping (a Register) that expects an
// answer, so silence is noticed at once, not at the next heartbeat.
func (l *liveness) sent(now time.Time) {
	if l.waiting.IsZero() {
		l.waiting = now
	}
}

// step looks at the link at now (lastRecv: its last authenticated packet,
// lastTraffic: the last datagram it sent outside a keepalive exchange,
// rtt: the measured round trip) and says what to do and when to look again.
func (l *liveness) step(now, lastRecv, lastTraffic time.Time, rtt time.Duration) (verdict, time.Duration) {
	if !l.waiting.IsZero() && lastRecv.After(l.waiting) {
		l.waiting, l.probing = time.Time{}, time.Time{} // answered: all is well
	}
	switch {
	case !l.probing.IsZero():
		left := l.probing.Add(fastProbeWindow).Sub(now)
		if left <= 0 {
			return dead, 0
		}
		return sendPing, min(fastProbeInterval, left)
	case !l.waiting.IsZero():
		wait := l.waiting.Add(answerWait(rtt)).Sub(now)
		if wait > 0 {
			return idle, wait
		}
		l.probing = now
		return sendPing, fastProbeInterval
	case !now.Before(l.nextPing):
		// The relay answered that traffic (or is talking now): it is
		// alive, not only when it answered the last Ping. A dead relay
		// while KCP retransmits is traffic without an answer.
		alive := lastRecv.After(l.beat) && (lastRecv.After(lastTraffic) || now.Sub(lastRecv) < answerWait(rtt))
		if lastTraffic.After(l.beat) && alive {
			// The mapping was refreshed at lastTraffic: the gap counts
			// from there (if that gap is over already, ping now).
			if next := lastTraffic.Add(beatGap(l.interval)); next.After(now) {
				l.beat, l.nextPing = now, next
				l.skipped++
				return idle, next.Sub(now)
			}
		}
		l.beat = now
		l.nextPing = now.Add(beatGap(l.interval))
		l.waiting = now
		return sendPing, answerWait(rtt)
	}
	return idle, l.nextPing.Sub(now)
}

// retune applies a new interval at once when it is shorter than the wait
// for the next Ping (a longer one applies from the next Ping on).
func (l *liveness) retune(now time.Time, interval time.Duration) {
	l.interval = interval
	if next := now.Add(beatGap(interval)); l.waiting.IsZero() && next.Before(l.nextPing) {
		l.nextPing = next
	}
}

// stalled discounts a stall of this process: the heartbeat woke late by
// late, so that much of the time the relay had to answer was time the
// agent could not hear it (the goroutines that read its answers did not
// run either). The wait for an answer and a running probe window move on
// by it. A router whose CPU is busy elsewhere for a few seconds (or ten
// thousand agents sharing two cores in the relay-scale benchmark, which
// showed it: the benchmark's own sampler stood still 5 s, then hundreds
// of agents declared the relay silent) keeps its link.
func (l *liveness) stalled(late time.Duration) {
	if late < stallGrace {
		return
	}
	if !l.waiting.IsZero() {
		l.waiting = l.waiting.Add(late)
	}
	if !l.probing.IsZero() {
		l.probing = l.probing.Add(late)
	}
}

// stallGrace is how late a heartbeat wake-up must be to count as a stall
// of this process rather than timer jitter.
const stallGrace = 250 * time.Millisecond

// silentFor reports how long the relay has been silent, for the log line
// of a dead link.
func (l *liveness) silentFor(now time.Time) time.Duration { return now.Sub(l.waiting) }

// backoff is the reconnect schedule of agent.Run.
type backoff struct {
	outage time.Time     // when the last registered link was lost (zero: none)
	step   time.Duration // the doubling step when not in a fresh outage
	now    bool          // the next retry goes at once
}

// linkLost restarts the schedule small after a registered link that lived
// long enough ended.
func (b *backoff) linkLost(now time.Time, lived time.Duration) {
	if lived < minLinkLife && !b.outage.IsZero() {
		return // a link that died at once: keep the schedule running
	}
	b.outage, b.step, b.now = now, 0, true
}

// replacedHoldOff: an agent told that a newer session with its key took
// over is not the agent that made it (that one closed its old link
// itself), so another agent holds its key. It comes back after about
// twice this (at most reconnect_max), not at once: at once, it took the
// key back within 50 ms and cut the newer session's connections; later,
// but within the relay's 30 s duplicate window, the relay still sees the
// pair replacing each other and keeps one (relay/duplicate.go).
const replacedHoldOff = 5 * time.Second

// holdOff makes the next wait long: the relay asked the agent to stay
// away for a while (another agent uses its key).
func (b *backoff) holdOff(ceiling time.Duration) {
	b.outage, b.step, b.now = time.Time{}, ceiling, false
}

// next returns how long to wait before the next round of dials.
func (b *backoff) next(now time.Time, ceiling time.Duration) time.Duration {
	if b.now {
		b.now = false
		return rand.N(immediateSpread)
	}
	if !b.outage.IsZero() {
		switch in := now.Sub(b.outage); {
		case in < outageFast:
			return jitter(outageFastEvery)
		case in < outageSlow:
			return jitter(outageSlowEvery)
		}
		b.outage, b.step = time.Time{}, outageSlowEvery
	}
	b.step = min(ceiling, max(time.Second, 2*b.step))
	return jitter(b.step)
}

// heartbeat pings the relay and ends the link when it falls silent (see
// liveness); it returns endSilent then. The pings also keep the NAT
// mapping of the agent's socket alive, unless the link's own traffic
// does: each Ping marks its exchange as keepalive (conn.Keepalive, for
// keepaliveWindow), so only other traffic makes a beat skip.
func (a *Agent) heartbeat(ctx context.Context, c *control, conn *relaylink.Conn, log *slog.Logger) endReason {
	l := liveness{}
	var seq uint32
	t := time.NewTimer(0) // ping at once: status shows the RTT from the start
	due := time.Now()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return endClosed
		case <-c.asked:
			l.sent(time.Now())
		case <-c.retuned:
			l.retune(time.Now(), a.heartbeatNow())
		case <-t.C:
			l.stalled(time.Since(due))
		}
		l.interval = a.heartbeatNow() // a reload or a measurement may change it
		now := time.Now()
		rtt := a.state.roundTrip()
		v, wait := l.step(now, conn.LastReceive(), conn.LastTraffic(), rtt)
		switch v {
		case dead:
			log.Warn("relay silent, reconnecting", "silent", l.silentFor(now).Round(100*time.Millisecond))
			return endSilent
		case sendPing:
			if !l.probing.IsZero() {
				log.Debug("no answer from the relay, probing", "since", now.Sub(l.waiting).Round(100*time.Millisecond))
			}
			seq++
			conn.Keepalive(now.Add(keepaliveWindow(rtt)))
			sent := time.Now().UnixNano()
			if conn.Transport == link.UDP {
				// A keepalive datagram; until the relay has answered one
				// (an older relay does not), a control Ping too.
				if err := conn.SendKeepalive(uint64(sent)); err != nil && c.keepalives.Load() {
					return endClosed
				}
			}
			if !c.keepalives.Load() {
				if err := c.send(protocol.Ping{Seq: seq, SentNanos: sent}); err != nil {
					return endClosed
				}
			}
		}
		t.Reset(wait)
		due = time.Now().Add(wait)
	}
}

// retryRefused re-sends Register while the relay refuses exposures for a
// reason that may pass (port in use, listen error), backing off from
// refusedRetryMin to refusedRetryMax; a reply without such refusals
// resets it. replies carries that verdict after every RegisterReply.
func (a *Agent) retryRefused(ctx context.Context, c *control, replies <-chan bool, log *slog.Logger) {
	t := time.NewTimer(0)
	t.Stop()
	defer t.Stop()
	defer a.state.setRetry(time.Time{})
	var step time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case refused := <-replies:
			if !refused {
				step = 0
				t.Stop()
				a.state.setRetry(time.Time{})
				continue
			}
			step = min(refusedRetryMax, max(refusedRetryMin, 2*step))
			wait := jitter(step)
			a.state.setRetry(time.Now().Add(wait))
			log.Debug("retrying refused exposures", "in", wait.Round(time.Millisecond))
			t.Reset(wait)
		case <-t.C:
			a.links.ExposuresRetried.Add(1)
			if c.request(registerMsg(a.cfg.Load())) != nil {
				return
			}
		}
	}
}

// retryable reports whether the agent retries an exposure refused with s:
// a port in use or a failed listen may pass; not allowed or invalid will
// not until a config changes (a reload re-sends Register anyway).
func retryable(s protocol.Status) bool {
	return s == protocol.StatusPortInUse || s == protocol.StatusError
}
