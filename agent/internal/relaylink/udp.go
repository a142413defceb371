package relaylink

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
)

// answers collects what the relay sends back to one handshake index.
type answers struct {
	addr    netip.AddrPort
	resp    chan []byte
	cookie  chan []byte
	refused chan protocol.Refuse
}

func newAnswers(addr netip.AddrPort) *answers {
	return &answers{addr: addr, resp: make(chan []byte, 4), cookie: make(chan []byte, 4), refused: make(chan protocol.Refuse, 1)}
}

// offer queues an answer from the relay; others' datagrams and overflow
// are dropped (the handshake is retried anyway).
func (a *answers) offer(typ protocol.Type, b []byte, from netip.AddrPort) {
	if from != a.addr {
		return
	}
	switch typ {
	case protocol.TypeHandshakeResp:
		trySend(a.resp, append([]byte(nil), b...))
	case protocol.TypeCookie:
		trySend(a.cookie, append([]byte(nil), b...))
	case protocol.TypeRefuse:
		if r, err := protocol.ParseRefuse(b); err == nil {
			trySend(a.refused, r)
		}
	}
}

func trySend[T any](c chan T, v T) {
	select {
	case c <- v:
	default:
	}
}

// dialUDP handshakes over the shared socket, retrying (retry.go) for
// wait (0: until ctx ends), then starts KCP and smux on the session.
func (d *Dialer) dialUDP(ctx context.Context, t Target, addr netip.AddrPort, wait time.Duration) (*Conn, error) {
	idx := NewIndex()
	ans := newAnswers(addr)
	d.Socket.Register(idx, ans.offer)
	sess, payload, err := d.handshakeUDP(ctx, t, idx, ans, wait)
	if err != nil {
		d.Socket.Unregister(idx)
		return nil, err
	}
	var connp atomic.Pointer[Conn]
	var lost atomic.Bool // the relay lost our session: said and closed once
	other := func(typ protocol.Type, b []byte, from netip.AddrPort) {
		if typ != protocol.TypeRefuse || from != addr {
			return // late handshake answers and cookies: the link is up
		}
		if r, err := protocol.ParseRefuse(b); err == nil && r.Code == protocol.RefuseUnknownSession {
			// The relay lost our session (restart, expiry): reconnect now
			// instead of waiting for heartbeats to time out. Every packet
			// in flight draws its own Refuse: act on the first.
			if c := connp.Load(); c != nil && lost.CompareAndSwap(false, true) {
				d.Log.Info("relay does not know our session, reconnecting", "relay", t.Address)
				go c.Close()
			}
		}
	}
	pc := link.NewPacketConn(sess.Session, addr, d.Socket.Send, nil, nil)
	d.Socket.Attach(idx, pc, other)
	d.Socket.RegisterRemote(sess.RemoteIndex, other)
	cleanup := func() {
		d.Socket.Unregister(idx)
		d.Socket.UnregisterRemote(sess.RemoteIndex)
	}
	newLink := link.NewUDPLink
	if payload.Caps&protocol.FlagParkable != 0 && d.Tuning.Parks() { // both ends park
		newLink = link.NewParkingUDPLink
	}
	l, err := newLink(pc, idx, d.Tuning, false)
	if err != nil {
		cleanup()
		return nil, err
	}
	c := &Conn{Link: l, Target: t, Addr: addr, Observed: payload.Observed, ClockOffset: sess.clockOffset, cleanup: cleanup}
	connp.Store(c)
	return c, nil
}

// strayGap is the least time between an initiation and a copy sent
// early because the relay sent a stray Refuse (it started again).
const strayGap = 500 * time.Millisecond

// busyWait is the least a UDP handshake waits in all once the relay has
// answered with a cookie (within the caller's deadline): the relay is
// reachable over UDP and working through a queue (a restart under
// thousands of agents), so neither the TCP fallback nor a new dial would
// help. Before, an agent gave up at the 3 s fallback wait, or after about
// 22 s UDP-only, and dialed again with a new initiation while the relay
// still worked on the first, which then built a session nobody confirmed
// (7,600 of them when 10,000 agents came back to one relay).
const busyWait = 60 * time.Second

// handshakeUDP sends an initiation, and the same one again on the
// schedule of retry.go, until it is answered, wait ends (0: never; at
// least busyWait from the start once a cookie came) or ctx ends. A
// cookie from the relay is put into a new initiation at once.
func (d *Dialer) handshakeUDP(ctx context.Context, t Target, idx uint32, ans *answers, wait time.Duration) (*established, protocol.HandshakePayload, error) {
	var deadline <-chan time.Time
	var timer *time.Timer
	start := time.Now()
	if wait > 0 {
		timer = time.NewTimer(wait)
		defer timer.Stop()
		deadline = timer.C
	}
	busy := false
	var gaps retryGaps
	retry := time.NewTimer(gaps.gap())
	defer retry.Stop()
	h := &initiator{d: d, t: t, index: idx}
	if d.Tuning.Parks() {
		h.flags = protocol.FlagParkable
	}
	// A relay that starts again invites its last run's agents (a Refuse
	// naming their old session, demux/stray.go): it is up, so the next
	// copy goes now rather than at the end of the gap, at most every
	// strayGap whatever arrives.
	wake := make(chan struct{}, 1)
	defer d.Socket.WatchStrays(ans.addr, func() { trySend(wake, struct{}{}) })()
	var sent time.Time
	send := func() error {
		m1, err := h.next()
		if err != nil {
			return err
		}
		sent = time.Now()
		if err := d.Socket.Send(m1, ans.addr); err != nil {
			// The network may not be up yet: keep trying until wait ends.
			d.Log.Debug("send handshake", "relay", t.Address, "err", err)
		}
		return nil
	}
	if err := send(); err != nil {
		return nil, protocol.HandshakePayload{}, err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, protocol.HandshakePayload{}, ctx.Err()
		case <-deadline:
			return nil, protocol.HandshakePayload{}, h.noSession("udp", wait)
		case r := <-ans.refused:
			if err := refusal(r, d, t); err != nil {
				return nil, protocol.HandshakePayload{}, err
			}
		case b := <-ans.cookie:
			fresh := h.takeCookie(b)
			if fresh && timer != nil && !busy && wait < busyWait {
				busy, wait = true, busyWait
				timer.Reset(time.Until(start.Add(busyWait)))
			}
			if fresh {
				if err := send(); err != nil {
					return nil, protocol.HandshakePayload{}, err
				}
			}
		case m := <-ans.resp:
			sess, p, err := h.finish(m)
			if err != nil {
				d.Log.Debug("bad handshake response", "relay", t.Address, "err", err)
				continue
			}
			return sess, p, nil
		case <-retry.C:
			if err := send(); err != nil {
				return nil, protocol.HandshakePayload{}, err
			}
			retry.Reset(gaps.gap())
		case <-wake:
			if time.Since(sent) >= strayGap {
				if err := send(); err != nil {
					return nil, protocol.HandshakePayload{}, err
				}
			}
		}
	}
}

// refusal turns a Refuse answering a handshake into the error to report,
// or nil for a code that does not end the attempt.
func refusal(r protocol.Refuse, d *Dialer, t Target) error {
	switch r.Code {
	case protocol.RefuseVersion:
		return versionError(r)
	case protocol.RefuseUnknownKey:
		return fmt.Errorf("relay %s %w: this agent's public key %s is not listed in the relay's config", t.Address, ErrRefused, d.Key.Public())
	}
	return nil
}
