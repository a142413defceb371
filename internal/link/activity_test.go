package link

import (
	"io"
	"net/netip"
	"testing"
	"time"
)

// TestActivity runs KCP and smux between two in-memory conns and checks
// what the agent's heartbeat relies on: an idle link sends nothing at all
// (no KCP or smux keepalive of its own), an exchange inside a Keepalive
// window is not traffic (the Ping, the relay's answer and KCP's ACK of
// it), and the same exchange outside a window is.
func TestActivity(t *testing.T) {
	as, rs := sessions(t)
	aAddr := netip.MustParseAddrPort("198.51.100.1:4000")
	bAddr := netip.MustParseAddrPort("203.0.113.1:7700")
	var a, b *PacketConn
	a = NewPacketConn(as, bAddr, func(p []byte, _ netip.AddrPort) error { b.Deliver(p, aAddr); return nil }, nil, nil)
	b = NewPacketConn(rs, aAddr, func(p []byte, _ netip.AddrPort) error { a.Deliver(p, bAddr); return nil }, nil, nil)
	la, lb := udpLinks(t, a, b)
	if !la.LastTraffic().IsZero() {
		t.Fatalf("LastTraffic before any send: %v, want zero", la.LastTraffic())
	}
	go func() { // the relay's end echoes one stream
		st, err := lb.AcceptStream()
		if err == nil {
			io.Copy(st, st)
		}
	}()
	st, err := la.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	buf := make([]byte, 16)
	exchange := func(msg string) {
		t.Helper()
		st.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := st.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(st, buf[:len(msg)]); err != nil || string(buf[:len(msg)]) != msg {
			t.Fatalf("echo: got %q, %v; want %q", buf[:len(msg)], err, msg)
		}
		time.Sleep(100 * time.Millisecond) // the ACK of the echo goes out
	}
	exchange("hello")
	if la.Sent() == 0 || la.LastTraffic().IsZero() {
		t.Fatalf("after an exchange: sent %d, last traffic %v", la.Sent(), la.LastTraffic())
	}

	// Idle: KCP (nodelay, 10 ms ticks) and smux have nothing to say.
	sent := la.Sent()
	time.Sleep(time.Second)
	if got := la.Sent(); got != sent {
		t.Fatalf("idle link sent %d datagrams in 1 s, want 0", got-sent)
	}

	// A keepalive exchange inside its window does not count as traffic.
	before := la.LastTraffic()
	la.Keepalive(time.Now().Add(time.Second))
	exchange("ping")
	if got := la.LastTraffic(); !got.Equal(before) {
		t.Fatalf("keepalive exchange counted as traffic: last traffic %v -> %v", before, got)
	}
	if la.Sent() < sent+2 {
		t.Fatalf("keepalive exchange sent %d datagrams, want at least 2 (segment and ACK)", la.Sent()-sent)
	}

	// The same exchange after the window is traffic.
	time.Sleep(time.Second)
	exchange("data")
	if got := la.LastTraffic(); !got.After(before) {
		t.Fatalf("data after the window not counted: last traffic %v, was %v", got, before)
	}
}
