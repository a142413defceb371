package lab

import (
	"strings"
	"testing"
	"time"
)

// TestPeerPairs: for representative NAT pairs, b1 reaches a1's echo
// through a peer session; the session goes direct where the pair allows
// it (port-restricted on both sides by naive punching, sequential
// symmetric against port-restricted by port prediction) and stays on the
// relay where no probe can meet (random symmetric on both sides). The
// first echo comes within a second of the agents' start; 4 MiB echoed with
// sha256 equal once the path has settled.
func TestPeerPairs(t *testing.T) {
	cases := []struct {
		a, b   Behaviour
		direct bool
	}{
		{PortRestricted, PortRestricted, true},
		{SymmetricSeq, PortRestricted, true},
		{PortRestricted, SymmetricSeq, true},
		{SymmetricSeq, SymmetricSeq, true}, // prediction hints both ways
		{Symmetric, PortRestricted, true},  // birthday probing
		{UDPBlocked, PortRestricted, true}, // TCP simultaneous open
		{Symmetric, Symmetric, false},
	}
	for _, c := range cases {
		t.Run(c.a.String()+"/"+c.b.String(), func(t *testing.T) {
			t.Parallel()
			l := up(t, map[string]Site{"a": {Behaviour: c.a}, "b": {Behaviour: c.b}})
			p := startPeers(t, l, []string{"a1", "b1"}, PeerLink{From: "b1", To: "a1"})
			first := p.firstEcho(t, "b1", "a1")
			var st PeerStatus
			if c.direct {
				var err error
				// Two punching rounds and the re-punch backoff between
				// them: the first round can start before the peer's NAT
				// facts arrive (an intro racing the facts of an agent
				// that has just come up over TCP; seen once in CI).
				if st, err = p.WaitDirect("b1", "a1", 2*punchWait+6*time.Second); err != nil {
					t.Fatal(err)
				}
			} else {
				time.Sleep(punchWait) // one whole punching round
				st = p.peer(t, "b1", "a1")
			}
			r := p.echo(t, "b1", "a1", 4<<20)
			after := p.peer(t, "b1", "a1")
			back := p.peer(t, "a1", "b1")
			t.Logf("%s x %s: first echo %v; path %s (a1 sees %s), found as %q, strategy %q, direct after %.0f ms; 4 MiB echo %.0f Mbit/s",
				c.a, c.b, first.Round(time.Millisecond), after.Path, back.Path, st.FoundAs, st.Strategy, st.TimeToDirect, r.Mbps)
			// The first byte goes through the relay at once: it waits for
			// neither punching nor a handshake retry (measured 0.1-0.3 s).
			limit := time.Second
			if c.a == UDPBlocked || c.b == UDPBlocked {
				limit = 5 * time.Second // the agent gives UDP 3 s before it takes TCP
			}
			if first > limit {
				t.Errorf("first echo %v after the agents started, want within %v", first.Round(time.Millisecond), limit)
			}
			want := "relay"
			if c.direct {
				want = "direct"
			}
			if after.Path != want || back.Path != want {
				t.Fatalf("path after the transfer: b1 %q, a1 %q; want %s (b1: %+v)", after.Path, back.Path, want, after)
			}
		})
	}
}

// punchWait outlasts one punching round (agent/peerpath.go punchRound, 5 s).
const punchWait = 6 * time.Second

// TestPeerSameNAT: two agents behind one NAT that does not hairpin reach
// each other directly over their LAN (the reflexive addresses cannot
// meet: the gateway drops packets to its own public address from inside).
func TestPeerSameNAT(t *testing.T) {
	for _, b := range []Behaviour{PortRestricted, Symmetric} {
		t.Run(b.String(), func(t *testing.T) {
			t.Parallel()
			l := up(t, map[string]Site{"a": {Behaviour: b, Hosts: 2}})
			p := startPeers(t, l, []string{"a1", "a2"}, PeerLink{From: "a2", To: "a1"})
			first := p.firstEcho(t, "a2", "a1")
			st, err := p.WaitDirect("a2", "a1", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			r := p.echo(t, "a2", "a1", 4<<20)
			t.Logf("%s, no hairpin: first echo %v; direct to %s found as %q after %.0f ms; 4 MiB echo %.0f Mbit/s",
				b, first.Round(time.Millisecond), st.Direct, st.FoundAs, st.TimeToDirect, r.Mbps)
			// "learned" is the same LAN path seen from the other end: a1's
			// probe from its LAN address reached a2 before a2's own probe
			// of that candidate was answered.
			lanPath := st.FoundAs == "lan" || st.FoundAs == "learned"
			if !lanPath || st.Direct != l.HostIP("a1")+":"+portOf(st.Direct) {
				t.Fatalf("direct path %s found as %q, want a1's LAN address %s (found as lan or learned)", st.Direct, st.FoundAs, l.HostIP("a1"))
			}
		})
	}
}

func portOf(addr string) string {
	_, port, _ := strings.Cut(addr, ":")
	return port
}

// TestPeerLateOnce: the exposing agent comes online 3 s late (behind a
// UDP-blocking gateway it gives up on UDP first), while the connecting
// agent asks for it every few seconds. The relay introduces the two once:
// the asker's retry crossing the introduction from the relay's waiting
// list used to make a second pair, a second handshake, and the first
// session (with the stream just opened on it) dropped as "replaced".
func TestPeerLateOnce(t *testing.T) {
	t.Parallel()
	l := up(t, map[string]Site{"a": {Behaviour: UDPBlocked}, "b": {Behaviour: PortRestricted}})
	p := startPeers(t, l, []string{"a1", "b1"}, PeerLink{From: "b1", To: "a1"})
	first := p.firstEcho(t, "b1", "a1")
	p.echo(t, "b1", "a1", 1<<20)
	pairs := map[string]bool{}
	for _, line := range strings.Split(p.Relay.Output(), "\n") {
		if strings.Contains(line, `msg="peers introduced"`) {
			_, id, _ := strings.Cut(line, " pair=")
			pairs[id] = true
		}
	}
	replaced := strings.Count(p.Agents["b1"].Output(), "replaced by a new session")
	t.Logf("first echo after %v; pairs introduced %d, sessions replaced %d", first.Round(time.Millisecond), len(pairs), replaced)
	if len(pairs) != 1 || replaced != 0 {
		t.Fatalf("the relay made %d pairs for one peer link and b1 replaced %d sessions; want 1 and 0", len(pairs), replaced)
	}
}
