package relay

import (
	"net/netip"
	"sync"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

const (
	// dupWindow: when a session from address B replaces one from A and,
	// within this window, a session from A replaces B's again, two agents
	// use one key. One agent that restarts or whose NAT rebinds comes
	// back from a new address, not from the one it was replaced at.
	// 30 s holds a few rounds of an agent's immediate reconnect.
	dupWindow = 30 * time.Second
	// dupMemory is how long a key stays flagged after its last
	// replacement or refusal: longer than any agent's reconnect_max
	// default, so a twin that backs off is still recognised on return.
	dupMemory = 10 * time.Minute
	// dupIncumbentSlack is added to the live session's heartbeat interval
	// to judge it healthy (it has not missed a heartbeat).
	dupIncumbentSlack = 2 * time.Second
)

// dupTracker notices two agents sharing one key: their sessions replace
// each other on the relay forever (each reconnects at once when replaced).
// mu guards keys.
type dupTracker struct {
	mu   sync.Mutex
	keys map[secure.PublicKey]*dupState
}

type dupState struct {
	at       time.Time      // the last replacement (or refusal)
	replaced netip.AddrPort // whose session it closed
	flagged  bool           // two agents seen; cleared after dupMemory
}

// replaced records that a session from newAddr replaced one from oldAddr
// and reports whether the key looks shared; first is true the first time
// (so the relay logs it once).
func (d *dupTracker) replaced(key secure.PublicKey, oldAddr, newAddr netip.AddrPort, now time.Time) (dup, first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = map[secure.PublicKey]*dupState{}
	}
	st := d.keys[key]
	if st == nil {
		st = &dupState{}
		d.keys[key] = st
	}
	d.expireLocked(st, now)
	back := !st.at.IsZero() && now.Sub(st.at) < dupWindow && sameAgentAddr(st.replaced, newAddr) && !sameAgentAddr(oldAddr, newAddr)
	first = back && !st.flagged
	st.flagged = st.flagged || back
	st.at, st.replaced = now, oldAddr
	return st.flagged && !sameAgentAddr(oldAddr, newAddr), first
}

// flagged reports whether key is known to be shared; a refusal counts as
// activity and keeps the flag.
func (d *dupTracker) flagged(key secure.PublicKey, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.keys[key]
	if st == nil {
		return false
	}
	d.expireLocked(st, now)
	if st.flagged {
		st.at = now
	}
	return st.flagged
}

func (d *dupTracker) expireLocked(st *dupState, now time.Time) {
	if st.flagged && now.Sub(st.at) > dupMemory {
		st.flagged = false
	}
}

// sameAgentAddr compares agent addresses: a UDP agent keeps one socket,
// so its whole address; a TCP agent gets a new port per connection, so
// only its IP. (Two agents behind one NAT on TCP look alike then; the
// duplicate is still detected, by the IP they share.)
func sameAgentAddr(a, b netip.AddrPort) bool {
	return a == b || (a.Addr() == b.Addr() && (a.Port() == 0 || b.Port() == 0))
}

// peer is the agent's current address (it follows NAT rebinding on UDP).
// For TCP sessions the port is dropped (see sameAgentAddr).
func (s *session) peer() netip.AddrPort {
	if s.pc != nil {
		return s.pc.Peer()
	}
	return netip.AddrPortFrom(s.addr.Addr(), 0)
}

// healthy reports whether the session heard from its agent within one of
// the agent's heartbeat intervals (plus slack).
func (s *session) healthy(now time.Time) bool {
	hb := 15 * time.Second
	if h := s.hello.Load(); h != nil && h.Heartbeat > 0 {
		hb = h.Heartbeat
	}
	return now.Sub(s.link.LastReceive()) < hb+dupIncumbentSlack
}

func noticeDuplicateKey(a, b netip.AddrPort) protocol.Notice {
	return protocol.Notice{Code: protocol.NoticeDuplicateKey,
		Text: "another agent (at " + b.String() + ", this one at " + a.String() + ") uses the same key; give each agent its own key"}
}
