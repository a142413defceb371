package relaylink

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent/internal/demux"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// TestRetryGapsGrowToMax: the waits between retries start at about a
// second, grow by half, stop growing at retryMax, and are spread by the
// jitter.
func TestRetryGapsGrowToMax(t *testing.T) {
	for range 100 {
		var g retryGaps
		for i, want := range []time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond, 3375 * time.Millisecond, 4 * time.Second, 4 * time.Second} {
			got := g.gap()
			lo, hi := time.Duration(float64(want)*(1-retryJitter)), time.Duration(float64(want)*(1+retryJitter))
			if got < lo || got > hi {
				t.Fatalf("gap %d = %v, want %v ±%.0f%%", i, got, want, 100*retryJitter)
			}
		}
	}
}

// TestRetryIsTheSameInitiation: an unanswered initiation is sent again
// byte for byte, at growing gaps; a cookie from the relay brings a new
// initiation at once (the same one re-MACed for a load cookie, a new one
// carrying it for a stale one), and that one is the one sent again
// afterwards.
func TestRetryIsTheSameInitiation(t *testing.T) {
	relay, relayKey, _ := startHandshake(t)

	type arrival struct {
		b    []byte
		at   time.Time
		from netip.AddrPort
	}
	read := func() arrival {
		relay.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, from, err := relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no initiation: %v", err)
		}
		return arrival{buf[:n], time.Now(), from}
	}
	a := []arrival{read(), read(), read()}
	for i := 1; i < len(a); i++ {
		if !bytes.Equal(a[i].b, a[0].b) {
			t.Fatalf("retry %d is not the first initiation byte for byte", i)
		}
	}
	g1, g2 := a[1].at.Sub(a[0].at), a[2].at.Sub(a[1].at)
	if g1 < 700*time.Millisecond || g2 < 1100*time.Millisecond {
		t.Fatalf("gaps %v then %v: want about 1 s, then about 1.5 s", g1, g2)
	}

	// A cookie for load: the same initiation at once, now with a valid
	// mac2 (no new ephemeral key), sent again as it is.
	macs := secure.NewMACChecker(relayKey)
	sent := time.Now()
	if _, err := relay.WriteToUDPAddrPort(macs.CookieReply(a[0].b, a[0].from, protocol.CookieLoad, sent), a[0].from); err != nil {
		t.Fatal(err)
	}
	c := read()
	body := secure.InitLen - secure.MACLen
	if !bytes.Equal(c.b[:body], a[0].b[:body]) || bytes.Equal(c.b, a[0].b) || c.at.Sub(sent) > 500*time.Millisecond {
		t.Fatalf("after a load cookie: same body %v, same bytes %v, after %v; want the same initiation with a new mac2 at once",
			bytes.Equal(c.b[:body], a[0].b[:body]), bytes.Equal(c.b, a[0].b), c.at.Sub(sent))
	}
	if !macs.CheckMAC2(c.b, c.from, time.Now()) {
		t.Fatal("the initiation after a cookie does not carry it (mac2)")
	}
	if r := read(); !bytes.Equal(r.b, c.b) {
		t.Fatal("the retry after the cookie is not the initiation with the cookie")
	}

	// A cookie for a stale timestamp must be echoed inside: a new
	// initiation (another ephemeral key) at once.
	sent = time.Now()
	if _, err := relay.WriteToUDPAddrPort(macs.CookieReply(c.b, c.from, protocol.CookieStale, sent), c.from); err != nil {
		t.Fatal(err)
	}
	d := read()
	if bytes.Equal(d.b[:body], c.b[:body]) || d.at.Sub(sent) > 500*time.Millisecond {
		t.Fatalf("after a stale cookie: same body %v, after %v; want a new initiation at once", bytes.Equal(d.b[:body], c.b[:body]), d.at.Sub(sent))
	}
	if r, err := secure.Consume(relayKey, d.b); err != nil || r.Cookie.IsZero() || !macs.CheckMAC2(d.b, d.from, time.Now()) {
		t.Fatalf("the initiation after a stale cookie: %v; want the cookie inside and as mac2", err)
	}
}

// TestCookieExtendsUDPWait: a relay that answers with a cookie is
// reachable and busy, so the handshake keeps going past its short wait
// (the 3 s before the TCP fallback, 1 s here) instead of giving up; one
// that answers nothing is left when the wait ends.
func TestCookieExtendsUDPWait(t *testing.T) {
	relayKey, agentKey := newKey(t), newKey(t)
	sock, err := demux.Listen(0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	d := &Dialer{Key: agentKey, Socket: sock, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	macs := secure.NewMACChecker(relayKey)

	for _, cookie := range []bool{false, true} {
		relay, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		relayAddr := relay.LocalAddr().(*net.UDPAddr).AddrPort()
		idx := NewIndex()
		ans := newAnswers(relayAddr)
		sock.Register(idx, ans.offer)
		ctx, cancel := context.WithCancel(context.Background())
		ended := make(chan error, 1)
		start := time.Now()
		go func() {
			_, _, err := d.handshakeUDP(ctx, Target{Address: relayAddr.String(), PublicKey: relayKey.Public()}, idx, ans, time.Second)
			ended <- err
		}()
		relay.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, from, err := relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no initiation: %v", err)
		}
		if cookie {
			relay.WriteToUDPAddrPort(macs.CookieReply(buf[:n], from, protocol.CookieLoad, time.Now()), from)
		}
		select {
		case err := <-ended:
			if cookie {
				t.Fatalf("after a cookie the handshake gave up after %v: %v", time.Since(start), err)
			}
		case <-time.After(2500 * time.Millisecond):
			cancel()
			<-ended
			if !cookie {
				t.Fatal("without any answer the handshake did not end when its 1 s wait did")
			}
		}
		cancel()
		sock.Unregister(idx)
		relay.Close()
	}
}

// TestRelayInviteSendsCopyAtOnce: a Refuse from the relay naming no
// session of ours (a restarted relay inviting its last run's agents) makes
// the waiting handshake send its copy at once instead of at the end of the
// retry gap.
func TestRelayInviteSendsCopyAtOnce(t *testing.T) {
	relay, _, idx := startHandshake(t)

	buf := make([]byte, 2048)
	relay.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := relay.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	first, t0 := append([]byte(nil), buf[:n]...), time.Now()
	time.Sleep(strayGap + 50*time.Millisecond)
	invite := protocol.AppendRefuse(nil, protocol.Refuse{Code: protocol.RefuseUnknownSession, Version: protocol.Version, Index: idx + 1})
	if _, err := relay.WriteToUDPAddrPort(invite, from); err != nil {
		t.Fatal(err)
	}
	n, _, err = relay.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if at := time.Since(t0); at > time.Duration(float64(retryFirst)*(1-retryJitter))-20*time.Millisecond {
		t.Fatalf("the copy came %v after the first initiation: not sent at the invitation (%v)", at, strayGap+50*time.Millisecond)
	}
	if !bytes.Equal(buf[:n], first) {
		t.Fatal("the copy sent at the invitation is not the initiation")
	}
}

// startHandshake runs the agent's UDP handshake towards a socket the test
// plays the relay on, until the test ends; it returns that socket, the
// relay's key and the handshake's session index.
func startHandshake(t *testing.T) (relay *net.UDPConn, relayKey secure.PrivateKey, idx uint32) {
	relayKey, agentKey := newKey(t), newKey(t)
	relay, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	relayAddr := relay.LocalAddr().(*net.UDPAddr).AddrPort()
	sock, err := demux.Listen(0, false)
	if err != nil {
		relay.Close()
		t.Fatal(err)
	}
	d := &Dialer{Key: agentKey, Socket: sock, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	idx = NewIndex()
	ans := newAnswers(relayAddr)
	sock.Register(idx, ans.offer)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.handshakeUDP(ctx, Target{Address: relayAddr.String(), PublicKey: relayKey.Public()}, idx, ans, 0)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		sock.Close()
		relay.Close()
	})
	return relay, relayKey, idx
}

// newKey generates a key (this package's tests cannot import
// internal/testenv, which imports the agent).
func newKey(t *testing.T) secure.PrivateKey {
	t.Helper()
	k, err := secure.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
