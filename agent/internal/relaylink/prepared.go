package relaylink

import (
	"sync"

	"github.com/pinhole/pinhole/protocol/secure"
)

// Prepared keeps the agent's key prepared for each relay key it
// handshakes with (secure.Initiator: the key ready for X25519 and the
// static-static DH result), so an initiation costs the router two scalar
// multiplications instead of four. An agent talks to the same few relays
// for its whole life and handshakes again at every reconnect; the map
// holds one entry per relay key seen, replaced when the agent's own key
// changes. The zero value is ready.
type Prepared struct {
	mu sync.Mutex
	m  map[secure.PublicKey]prepared
}

type prepared struct {
	key secure.PrivateKey
	in  *secure.Initiator
}

// get returns key prepared for relay.
func (p *Prepared) get(key secure.PrivateKey, relay secure.PublicKey) (*secure.Initiator, error) {
	if p == nil {
		return secure.NewInitiator(key, relay)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.m[relay]; ok && e.key == key {
		return e.in, nil
	}
	in, err := secure.NewInitiator(key, relay)
	if err != nil {
		return nil, err
	}
	if p.m == nil {
		p.m = map[secure.PublicKey]prepared{}
	}
	p.m[relay] = prepared{key, in}
	return in, nil
}
