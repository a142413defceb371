package relay

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
)

// readUDP is the only reader of the UDP socket: handshakes are answered
// here, Data datagrams are handed to their session's conn (which decrypts
// on its own goroutine), anything else is counted and dropped.
func (r *Relay) readUDP(ctx context.Context) {
	if r.uio != nil {
		r.uio.ReadLoop(func(b []byte, from netip.AddrPort) { r.handleDatagram(ctx, b, from) })
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := r.udp.ReadFrom(buf)
		if err != nil {
			if isClosed(err) || ctx.Err() != nil {
				return
			}
			continue
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		from := ua.AddrPort()
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		r.handleDatagram(ctx, buf[:n], from)
	}
}

func (r *Relay) handleDatagram(ctx context.Context, b []byte, from netip.AddrPort) {
	t, err := protocol.Classify(b)
	if err != nil || len(b) > protocol.MaxDatagram+64 {
		r.stats.Malformed.Add(1)
		return
	}
	switch t {
	case protocol.TypeHandshakeInit:
		if !r.limiter.allow(from.Addr(), time.Now()) {
			r.stats.HandshakeDropped.Add(1)
			return
		}
		select {
		case r.handshakes <- initMsg{b: append([]byte(nil), b...), from: from}:
		default:
			r.stats.HandshakeDropped.Add(1)
		}
	case protocol.TypeData:
		if len(b) < protocol.DataHeaderLen {
			r.stats.Malformed.Add(1)
			return
		}
		idx := binary.BigEndian.Uint32(b[4:8])
		r.mu.Lock()
		s := r.byIndex[idx]
		r.mu.Unlock()
		if s == nil || s.pc == nil {
			r.stats.UnknownSession.Add(1)
			r.refuse(protocol.Refuse{Code: protocol.RefuseUnknownSession, Version: protocol.Version, Index: idx}, from)
			return
		}
		s.pc.Deliver(b, from)
	default:
		r.stats.Malformed.Add(1) // responses and refusals never go to a relay
	}
}

// handshakeWorker answers queued UDP handshakes until ctx ends.
func (r *Relay) handshakeWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-r.handshakes:
			r.handleInitUDP(ctx, m.b, m.from)
		}
	}
}

func (r *Relay) refuse(ref protocol.Refuse, to netip.AddrPort) {
	if r.refuseTokens.Add(-1) < 0 {
		return
	}
	r.sendUDP(protocol.AppendRefuse(nil, ref), to)
}

func (r *Relay) sendUDP(b []byte, to netip.AddrPort) error {
	if r.uio != nil {
		return r.uio.Send(b, to)
	}
	_, err := r.udp.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

func (r *Relay) handleInitUDP(ctx context.Context, msg []byte, from netip.AddrPort) {
	sess, entry, m2, conv := r.accept(msg, from, link.UDP, func(ref protocol.Refuse) { r.refuse(ref, from) })
	if sess == nil {
		return
	}
	s := newSession(r, entry, sess.LocalIndex, link.UDP, from)
	s.pc = link.NewPacketConn(sess, from, r.sendUDP, nil, func(to netip.AddrPort) {
		s.log.Info("agent address changed (NAT rebinding)", "addr", to)
	})
	l, err := link.NewUDPLink(s.pc, conv, r.cfg.Load().Tuning, true)
	if err != nil {
		r.release(s)
		return
	}
	s.link = l
	r.mu.Lock()
	r.byIndex[s.index] = s
	r.pending[s.key]++
	r.mu.Unlock()
	r.sendUDP(m2, from)
	r.sessions.Go(func() { s.run(ctx) })
}
