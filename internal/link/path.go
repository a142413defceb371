package link

import (
	"crypto/rand"
	"net/netip"
	"sync"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

// Path validation (RFC 9000 §8.2 and §9.3 in spirit). An authenticated
// packet from a new source address is accepted, but the conn keeps sending
// to the old address until the new one has answered a challenge: a sealed
// DataPathChallenge sent there, whose token must come back in a
// DataPathResponse from that same address. Real NAT rebinding moves within
// one round trip; a genuine packet withheld on the path and replayed from
// another address (the replay window takes it once, as it has never been
// seen) only earns that address a challenge it cannot answer, unless it
// relays packets to and from the real peer, which makes it a working path.

// A conn has up to two paths to its peer: direct (the socket, to the
// validated peer address) and, for peer sessions, the relay (the owner's
// function wraps a sealed datagram for the relay to forward). The owner
// picks the path (UseRelay); the conn is told how each datagram arrived
// (Deliver or DeliverRelayed) and never lets a relayed one move the direct
// path. Switching path is invisible to KCP and smux above: same session,
// same keys and counters, so streams survive it (TestPathSwitchKeepsStreams).

// SetRelayPath installs the relay path (nil removes it).
func (c *PacketConn) SetRelayPath(send func(b []byte) error) {
	if send == nil {
		c.relay.Store(nil)
		c.viaRelay.Store(false)
		return
	}
	c.relay.Store(&send)
}

// UseRelay selects the relay path (true) or the direct one (false) for
// what WriteTo sends from now on; without a relay path it stays direct.
func (c *PacketConn) UseRelay(on bool) { c.viaRelay.Store(on && c.relay.Load() != nil) }

// UsingRelay reports whether WriteTo sends on the relay path.
func (c *PacketConn) UsingRelay() bool { return c.viaRelay.Load() }

// LastSentDirect returns when a datagram last went out on the direct path
// (zero: never). Sent but unanswered for long is how a dead direct path
// shows itself.
func (c *PacketConn) LastSentDirect() time.Time {
	if n := c.lastSent.Load(); n != 0 {
		return unixNano(n)
	}
	return time.Time{}
}

// LastDirect returns when the last authenticated datagram came directly
// (zero time: never): the owner's evidence that the direct path works.
func (c *PacketConn) LastDirect() time.Time {
	if n := c.lastDirect.Load(); n != 0 {
		return unixNano(n)
	}
	return time.Time{}
}

// sendOnPath sends a sealed datagram on the selected path.
func (c *PacketConn) sendOnPath(pkt []byte) error { return c.selectPath().send(pkt) }

// pathChoice is the path a datagram, or a flush's worth of them, goes on:
// the relay's send function, or (relay nil) the peer's address.
type pathChoice struct {
	c     *PacketConn
	relay func([]byte) error
	peer  netip.AddrPort
}

// selectPath reads the selected path once, and stamps a direct one as
// used now (LastSentDirect): one clock read per flush, not per datagram
// (it was 2 % of a relay's CPU under bulk).
func (c *PacketConn) selectPath() pathChoice {
	if c.viaRelay.Load() {
		if r := c.relay.Load(); r != nil {
			return pathChoice{c: c, relay: *r}
		}
	}
	c.lastSent.Store(nowNano())
	return pathChoice{c: c, peer: *c.peer.Load()}
}

func (p pathChoice) send(pkt []byte) error {
	if p.relay != nil {
		return p.relay(pkt)
	}
	return p.c.send(pkt, p.peer)
}

// challengeEvery bounds how often one candidate address is challenged:
// every authenticated packet from it would otherwise trigger one.
const challengeEvery = 200 * time.Millisecond

// maxProbes bounds the challenges in flight (hole punching probes a few
// hundred addresses at once); probeTTL is how long one waits for its answer.
const (
	maxProbes = 2048
	probeTTL  = 5 * time.Second
)

// probe is one challenge in flight to one address.
type probe struct {
	token [protocol.PathTokenLen]byte
	sent  time.Time
}

// pathValidator is the state of the challenges in flight; mu guards it.
type pathValidator struct {
	mu     sync.Mutex
	probes map[netip.AddrPort]probe
	// Challenges counts challenges sent; Moves counts validated moves.
	challenges, moves uint64
}

// maybeValidate challenges from when it is not the current peer.
func (c *PacketConn) maybeValidate(from netip.AddrPort) {
	if c.onRoam == nil || !from.IsValid() || from == *c.peer.Load() {
		return
	}
	c.challenge(from, nil)
}

// challengeBack answers a peer's challenge from a new address with one of
// ours at once, past the 200 ms limit of maybeValidate: our own probe to
// that address a moment ago was most likely dropped by the peer's NAT,
// which the peer's challenge has just opened. One challenge per challenge
// received, so no amplification.
func (c *PacketConn) challengeBack(from netip.AddrPort) {
	if c.onRoam == nil || !from.IsValid() || from == *c.peer.Load() {
		return
	}
	c.challenge(from, c.send)
}

// Probe sends a challenge to addr (a hole-punching candidate, or the
// current direct address to check it still works). An answer from addr
// makes it the direct path (onRoam) and refreshes LastDirect. It reports
// false when the probe was not sent (too many in flight, or addr was
// challenged within the last 200 ms).
func (c *PacketConn) Probe(addr netip.AddrPort) bool {
	return addr.IsValid() && c.challenge(addr, nil)
}

// ProbeFrom sends a challenge to addr through send (another socket:
// birthday probing opens hundreds toward one address). Every socket's
// probe to addr carries the same token, so whichever mapping gets through
// validates it; it is not rate-limited per address like Probe.
func (c *PacketConn) ProbeFrom(addr netip.AddrPort, send Sender) bool {
	return addr.IsValid() && c.challenge(addr, send)
}

// challenge sends a challenge to addr: through the conn's own sender, at
// most every challengeEvery per address, or through send, reusing addr's
// token while it is young.
func (c *PacketConn) challenge(to netip.AddrPort, send Sender) bool {
	v := &c.path
	now := time.Now()
	v.mu.Lock()
	if v.probes == nil {
		v.probes = map[netip.AddrPort]probe{}
	}
	p, ok := v.probes[to]
	switch {
	case send == nil && ok && now.Sub(p.sent) < challengeEvery:
		v.mu.Unlock()
		return false
	case send != nil && ok && now.Sub(p.sent) <= probeTTL/2:
	default:
		if !ok && !v.roomLocked(now) {
			v.mu.Unlock()
			return false
		}
		rand.Read(p.token[:])
		p.sent = now
		v.probes[to] = p
	}
	v.challenges++
	v.mu.Unlock()
	if send == nil {
		send = c.send
		if to == *c.peer.Load() {
			c.lastSent.Store(now.UnixNano()) // a probe of the direct path expects an answer too
		}
	}
	return c.sealSend(protocol.DataPathChallenge, p.token[:], to, send) == nil
}

// roomLocked reports whether another challenge may be recorded, dropping
// expired ones when the table is full.
func (v *pathValidator) roomLocked(now time.Time) bool {
	if len(v.probes) < maxProbes {
		return true
	}
	for a, p := range v.probes {
		if now.Sub(p.sent) > probeTTL {
			delete(v.probes, a)
		}
	}
	return len(v.probes) < maxProbes
}

// answerChallenge echoes a challenge to the address it came from: the
// address being validated is the one that must receive it. (A challenge
// forwarded by the relay has no address and is not answered: only direct
// paths are validated.)
func (c *PacketConn) answerChallenge(token []byte, from netip.AddrPort) {
	if len(token) == protocol.PathTokenLen && from.IsValid() {
		c.sendKind(protocol.DataPathResponse, token, from)
	}
}

// checkResponse moves the peer when the response matches a challenge in
// flight and comes from the address that was challenged.
func (c *PacketConn) checkResponse(token []byte, from netip.AddrPort) {
	if c.onRoam == nil {
		return
	}
	v := &c.path
	v.mu.Lock()
	p, ok := v.probes[from]
	ok = ok && string(token) == string(p.token[:]) && time.Since(p.sent) < probeTTL
	if ok {
		delete(v.probes, from)
		if from != *c.peer.Load() {
			v.moves++
		}
	}
	v.mu.Unlock()
	if !ok {
		return
	}
	c.lastValid.Store(nowNano())
	if from != *c.peer.Load() {
		c.peer.Store(&from)
		c.onRoam(from)
		if f := c.resendInFlight.Load(); f != nil {
			(*f)()
		}
	}
}

// LastValidated returns when a challenge was last answered (zero: never):
// proof that the direct path works both ways right now.
func (c *PacketConn) LastValidated() time.Time {
	if n := c.lastValid.Load(); n != 0 {
		return unixNano(n)
	}
	return time.Time{}
}

// sendKind seals a control payload of the given kind to addr.
func (c *PacketConn) sendKind(kind protocol.DataKind, payload []byte, addr netip.AddrPort) {
	c.sealSend(kind, payload, addr, c.send)
}

// sealSend seals payload as a Data datagram of the given kind and hands it
// to send for addr.
func (c *PacketConn) sealSend(kind protocol.DataKind, payload []byte, addr netip.AddrPort, send Sender) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	pkt, err := c.sess.SealKind((*bp)[:0], kind, payload)
	if err != nil {
		return err
	}
	return send(pkt, addr)
}

// PathStats returns how many path challenges this conn sent and how many
// moves they validated.
func (c *PacketConn) PathStats() (challenges, moves uint64) {
	c.path.mu.Lock()
	defer c.path.mu.Unlock()
	return c.path.challenges, c.path.moves
}
