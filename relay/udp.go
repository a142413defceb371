package relay

import (
	"context"
	"net/netip"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/stun"
)

// readUDP is the only reader of the UDP socket: handshakes are answered
// here, Data datagrams are handed to their session's conn (which decrypts
// on its own goroutine), anything else is counted and dropped.
func (r *Relay) readUDP(ctx context.Context) {
	r.uio.ReadLoop(func(b []byte, from netip.AddrPort) { r.handleDatagram(ctx, b, from) })
}

func (r *Relay) handleDatagram(ctx context.Context, b []byte, from netip.AddrPort) {
	if stun.Is(b) {
		r.stun.handle(b, from, 0)
		return
	}
	t, err := protocol.Classify(b)
	if err != nil || len(b) > protocol.MaxDatagram+64 {
		r.stats.Malformed.Add(1)
		return
	}
	switch t {
	case protocol.TypeHandshakeInit:
		if ctx.Err() != nil {
			// Stopping: the agents told so come straight back, and a
			// handshake now would build a session only to close it
			// (join), two DH each while every session says goodbye.
			r.stats.HandshakeDropped.Add(1)
			return
		}
		if r.resend(b, from) {
			return
		}
		switch r.admit(b, from, link.UDP, r.replyTo(from)) {
		case verdictOpen:
			r.enqueue(b, from, false)
		case verdictProven:
			r.enqueue(b, from, true)
		}
	case protocol.TypeData:
		idx, ok := protocol.ReceiverIndex(t, b)
		if !ok || len(b) < protocol.DataHeaderLen {
			r.stats.Malformed.Add(1)
			return
		}
		r.mu.Lock()
		s := r.byIndex[idx]
		r.mu.Unlock()
		if s == nil || s.pc == nil {
			r.stats.UnknownSession.Add(1)
			r.refuse(protocol.Refuse{Code: protocol.RefuseUnknownSession, Version: protocol.Version, Index: idx}, r.replyTo(from))
			return
		}
		s.pc.Deliver(b, from)
	default:
		r.stats.Malformed.Add(1) // responses, refusals and cookies never go to a relay
	}
}

// replyTo returns a function that sends a datagram to addr.
func (r *Relay) replyTo(addr netip.AddrPort) func([]byte) {
	return func(b []byte) { r.uio.SendNow(b, addr) } // on the socket's reader: never wait for the writer
}

// refuse sends a Refuse hint, within the shared budget for unsolicited
// answers.
func (r *Relay) refuse(ref protocol.Refuse, reply func([]byte)) {
	if r.refuseTokens.Add(-1) < 0 {
		return
	}
	reply(protocol.AppendRefuse(nil, ref))
}

func (r *Relay) sendUDP(b []byte, to netip.AddrPort) error {
	return r.uio.Send(b, to)
}

func (r *Relay) handleInitUDP(ctx context.Context, msg []byte, from netip.AddrPort) {
	sess, entry, m2, resp, _ := r.accept(msg, from, link.UDP, r.replyTo(from))
	if sess == nil {
		return
	}
	s := newSession(r, entry, sess.LocalIndex, link.UDP, from, resp.Timestamp)
	s.pc = link.NewPacketConn(sess, from, r.sendUDP, nil, func(to netip.AddrPort) {
		s.log.Info("agent address changed (NAT rebinding)", "addr", to)
		r.changedState() // where a restarted relay will invite it
	})
	s.pc.AnswerKeepalives(r.uio.SendNow)
	newLink := link.NewUDPLink
	if resp.Flags&protocol.FlagParkable != 0 { // and accept told the agent so
		newLink = link.NewParkingUDPLink
	}
	l, err := newLink(s.pc, resp.PeerIndex, r.cfg.Load().Tuning, true)
	if err != nil {
		r.release(s)
		return
	}
	s.link = l
	l.OnPark(func() { r.reclaim.add(parkedBytes) })
	s.peerIndex, s.m1, s.m2 = resp.PeerIndex, msg, m2 // for retries of this initiation (resend.go, retryOfLocked)
	if !r.join(s) {
		return
	}
	r.sendUDP(m2, from)
	r.sessions.Go(func() { s.run(ctx) })
}
