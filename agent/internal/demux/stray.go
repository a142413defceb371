package demux

import "net/netip"

// A relay that starts again sends each agent of its last run a Refuse
// "unknown session" naming the session index that agent had there (its
// state file): the agent's packets would draw the same. An agent whose
// link had already ended (the relay said goodbye) is dialing by then,
// between retries of its handshake, and the Refuse names a session it no
// longer has. WatchStrays lets that dial hear it: the relay is up again,
// so the next retry can go now. The hint is unauthenticated; all it may
// cause is an initiation sent early, which the dial bounds.

// WatchStrays calls h (which must not block) for each Refuse from addr
// that names no session of ours, until the returned stop is called. One
// watcher per address: a second replaces the first.
func (s *Socket) WatchStrays(addr netip.AddrPort, h func()) (stop func()) {
	w := &strayWatch{h}
	s.mu.Lock()
	if s.strays == nil {
		s.strays = map[netip.AddrPort]*strayWatch{}
	}
	s.strays[addr] = w
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.strays[addr] == w {
			delete(s.strays, addr)
		}
		s.mu.Unlock()
	}
}

type strayWatch struct{ h func() }
