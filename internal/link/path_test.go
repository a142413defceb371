package link

import (
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestPathSwitchKeepsStreams runs KCP and smux over two conns whose
// datagrams travel directly or through a stand-in for the relay, and
// switches both ends between the two paths every 64 datagrams either
// sends during a 4 MiB transfer (counted, not timed: a fast machine
// finishes the transfer in a few milliseconds): the stream never notices (the bytes arrive intact), both paths
// carried traffic, and no relayed datagram moved the direct peer.
func TestPathSwitchKeepsStreams(t *testing.T) {
	as, rs := sessions(t)
	aAddr := netip.MustParseAddrPort("198.51.100.1:4000")
	bAddr := netip.MustParseAddrPort("203.0.113.1:7700")
	var a, b *PacketConn
	var sent, switches atomic.Int64
	next := func() {
		if n := sent.Add(1); n%64 == 0 {
			relay := n/64%2 == 1
			a.UseRelay(relay)
			b.UseRelay(!relay) // the two ends need not agree
			switches.Add(1)
		}
	}
	a = NewPacketConn(as, bAddr, func(p []byte, _ netip.AddrPort) error { next(); b.Deliver(p, aAddr); return nil }, nil, func(netip.AddrPort) {})
	b = NewPacketConn(rs, aAddr, func(p []byte, _ netip.AddrPort) error { next(); a.Deliver(p, bAddr); return nil }, nil, func(netip.AddrPort) {})
	a.SetRelayPath(func(p []byte) error { next(); b.DeliverRelayed(p); return nil })
	b.SetRelayPath(func(p []byte) error { next(); a.DeliverRelayed(p); return nil })

	la, lb := udpLinks(t, a, b)

	payload := make([]byte, 4<<20)
	rand.Read(payload)
	got := make(chan [32]byte, 1)
	go func() {
		st, err := lb.AcceptStream()
		if err != nil {
			got <- [32]byte{}
			return
		}
		h := sha256.New()
		io.Copy(h, st)
		got <- [32]byte(h.Sum(nil))
	}()
	st, err := la.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	st.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := st.Write(payload); err != nil {
		t.Fatalf("write after %d path switches: %v", switches.Load(), err)
	}
	st.CloseWrite()
	select {
	case sum := <-got:
		if sum != sha256.Sum256(payload) {
			t.Fatal("bytes corrupted across path switches")
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("transfer stalled after %d path switches", switches.Load())
	}
	t.Logf("4 MiB intact across %d path switches; a got %d direct, %d relayed; b got %d direct, %d relayed",
		switches.Load(), a.Direct.Load(), a.Relayed.Load(), b.Direct.Load(), b.Relayed.Load())
	if a.Relayed.Load() == 0 || b.Relayed.Load() == 0 || a.Direct.Load() == 0 || b.Direct.Load() == 0 {
		t.Fatal("a path carried nothing: the test did not switch")
	}
	if a.Peer() != bAddr || b.Peer() != aAddr {
		t.Fatalf("peers moved: a -> %v, b -> %v", a.Peer(), b.Peer())
	}
	if a.LastDirect().IsZero() {
		t.Fatal("LastDirect not recorded")
	}
}
