package relaylink

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// dialUDP handshakes over the shared socket, retrying once a second for
// wait (0: until ctx ends), then starts KCP and smux on the session.
func (d *Dialer) dialUDP(ctx context.Context, t Target, addr netip.AddrPort, wait time.Duration) (*Conn, error) {
	idx := randIndex()
	resp := make(chan []byte, 4)
	refused := make(chan protocol.Refuse, 1)
	var pcp atomic.Pointer[link.PacketConn]
	var connp atomic.Pointer[Conn]
	var lost atomic.Bool // the relay lost our session: said and closed once
	handler := func(typ protocol.Type, b []byte, from netip.AddrPort) {
		switch typ {
		case protocol.TypeHandshakeResp:
			if from == addr {
				select {
				case resp <- append([]byte(nil), b...):
				default:
				}
			}
		case protocol.TypeData:
			if pc := pcp.Load(); pc != nil {
				pc.Deliver(b, from)
			}
		case protocol.TypeRefuse:
			r, err := protocol.ParseRefuse(b)
			if err != nil || from != addr {
				return
			}
			if c := connp.Load(); c != nil && r.Code == protocol.RefuseUnknownSession {
				// The relay lost our session (restart, expiry): reconnect
				// now instead of waiting for heartbeats to time out. Every
				// packet in flight draws its own Refuse: act on the first.
				if lost.CompareAndSwap(false, true) {
					d.Log.Info("relay does not know our session, reconnecting", "relay", t.Address)
					go c.Close()
				}
				return
			}
			select {
			case refused <- r:
			default:
			}
		}
	}
	d.Socket.Register(idx, handler)
	sess, payload, err := d.handshakeUDP(ctx, t, addr, idx, resp, refused, wait)
	if err != nil {
		d.Socket.Unregister(idx)
		return nil, err
	}
	pc := link.NewPacketConn(sess, addr, d.Socket.Send, nil, nil)
	pcp.Store(pc)
	d.Socket.RegisterRemote(sess.RemoteIndex, handler)
	cleanup := func() {
		d.Socket.Unregister(idx)
		d.Socket.UnregisterRemote(sess.RemoteIndex)
	}
	l, err := link.NewUDPLink(pc, idx, d.Tuning, false)
	if err != nil {
		cleanup()
		return nil, err
	}
	c := &Conn{Link: l, Target: t, Addr: addr, Observed: payload.Observed, cleanup: cleanup}
	connp.Store(c)
	return c, nil
}

func (d *Dialer) handshakeUDP(ctx context.Context, t Target, addr netip.AddrPort, idx uint32,
	resp <-chan []byte, refused <-chan protocol.Refuse, wait time.Duration) (*secure.Session, protocol.HandshakePayload, error) {
	var deadline <-chan time.Time
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		deadline = timer.C
	}
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	var inits []*secure.Initiation
	send := func() error {
		in, m1, err := secure.Initiate(d.Key, t.PublicKey, idx, secure.Timestamp(time.Now()))
		if err != nil {
			return err
		}
		inits = append(inits, in)
		if err := d.Socket.Send(m1, addr); err != nil {
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
			return nil, protocol.HandshakePayload{}, fmt.Errorf("relay %s over udp: %w after %v (udp may be blocked; or %s)", t.Address, ErrNoAnswer, wait, d.keyHint())
		case r := <-refused:
			if r.Code == protocol.RefuseVersion {
				return nil, protocol.HandshakePayload{}, versionError(r)
			}
		case m := <-resp:
			sess, p, err := finishAny(inits, m)
			if err != nil {
				d.Log.Debug("bad handshake response", "relay", t.Address, "err", err)
				continue
			}
			return sess, p, nil
		case <-retry.C:
			if len(inits) >= 64 {
				inits = inits[1:] // bound memory on very long waits
			}
			if err := send(); err != nil {
				return nil, protocol.HandshakePayload{}, err
			}
		}
	}
}
