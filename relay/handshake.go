package relay

import (
	"errors"
	"net/netip"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// accept runs the responder side of a handshake for either transport. It
// returns the session keys, the agent entry and message 2, or nil and a
// reason already counted and logged. refuse is called for a wrong version.
func (r *Relay) accept(msg []byte, from netip.AddrPort, transport link.Transport, refuse func(protocol.Refuse)) (*secure.Session, *AgentEntry, []byte, uint32) {
	cfg := r.cfg.Load()
	resp, err := secure.Consume(cfg.PrivateKey, msg)
	if err != nil {
		r.stats.HandshakeFailed.Add(1)
		if errors.Is(err, secure.ErrVersion) {
			h, _ := protocol.ParseHandshakeHeader(msg)
			r.log.Warn("handshake refused: unsupported protocol version", "addr", from, "transport", transport, "version", h.Version, "want", protocol.Version)
			refuse(protocol.Refuse{Code: protocol.RefuseVersion, Version: protocol.Version, Index: h.Sender})
			return nil, nil, nil, 0
		}
		// Garbage, or an agent that pinned another relay key: with Noise
		// IK the relay cannot tell which, nor who sent it.
		r.log.Debug("handshake failed (not for this relay's key, or garbage)", "addr", from, "transport", transport, "err", err)
		return nil, nil, nil, 0
	}
	entry := cfg.agentByKey(resp.Peer)
	if entry == nil {
		r.stats.UnknownAgent.Add(1)
		r.log.Warn("handshake refused: agent key not listed in relay config", "addr", from, "transport", transport, "key", resp.Peer.String())
		return nil, nil, nil, 0
	}
	if !r.replay.Accept(resp.Peer, resp.Timestamp) {
		r.stats.Replayed.Add(1)
		r.log.Warn("handshake refused: replayed or clock went backwards", "agent", entry.Name, "addr", from, "transport", transport)
		return nil, nil, nil, 0
	}
	r.mu.Lock()
	if r.pending[resp.Peer] >= maxPendingPerKey || len(r.byIndex) >= maxPending+len(r.live) {
		r.mu.Unlock()
		r.stats.PendingDiscarded.Add(1)
		r.log.Debug("handshake dropped: too many unconfirmed sessions", "agent", entry.Name)
		return nil, nil, nil, 0
	}
	idx := r.newIndexLocked()
	r.byIndex[idx] = nil // reserve
	r.mu.Unlock()
	payload := protocol.HandshakePayload{Observed: from}.Append(nil)
	sess, m2, err := resp.Respond(idx, payload)
	if err != nil {
		r.mu.Lock()
		delete(r.byIndex, idx)
		r.mu.Unlock()
		return nil, nil, nil, 0
	}
	r.stats.Handshakes.Add(1)
	return sess, entry, m2, resp.PeerIndex
}
