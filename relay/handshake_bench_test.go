package relay

import (
	"context"
	"io"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/protocol/secure"
)

// The handshake rate one core sustains bounds how fast a fleet comes back
// after a relay restart. Run per core with
//
//	go test -run '^$' -bench Handshake -cpu 1 ./relay/
//
// BenchmarkHandshakeAccept is gate 2 alone (two X25519 operations to
// read message 1, two to write message 2, the registry's bookkeeping);
// BenchmarkHandshakeSession is the handshake worker's whole job, with
// the session's KCP link and smux set up and torn down again.
// BenchmarkHandshakeResend is what an agent's retry of an answered
// initiation costs instead (resend.go): the socket reader's lookup and
// the answer sent again, no Diffie-Hellman work.

// benchRelay is a relay listing agents keys, on a loopback port.
func benchRelay(b testing.TB, agents int) (*Relay, []secure.PrivateKey) {
	cfg := &Config{Listen: "127.0.0.1:0", Bind: "127.0.0.1", Tuning: link.DefaultTuning()}
	var err error
	if cfg.PrivateKey, err = secure.GeneratePrivateKey(); err != nil {
		b.Fatal(err)
	}
	keys := make([]secure.PrivateKey, agents)
	for i := range keys {
		if keys[i], err = secure.GeneratePrivateKey(); err != nil {
			b.Fatal(err)
		}
		cfg.Agents = append(cfg.Agents, AgentEntry{Name: "a" + strconv.Itoa(i), PublicKey: keys[i].Public()})
	}
	r, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.uio.Close(); r.tcp.Close(); r.stun.close() })
	return r, keys
}

// initiations are messages 1 from each key in turn, b.N in all.
func initiations(b *testing.B, r *Relay, keys []secure.PrivateKey, n int) [][]byte {
	msgs := make([][]byte, n)
	ts := time.Now()
	for i := range msgs {
		_, m1, err := secure.Initiate(keys[i%len(keys)], r.cfg.Load().PrivateKey.Public(), uint32(i+1), secure.Timestamp(ts.Add(time.Duration(i))), secure.Cookie{})
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = m1
	}
	return msgs
}

func BenchmarkHandshakeAccept(b *testing.B) {
	r, keys := benchRelay(b, 1000)
	msgs := initiations(b, r, keys, b.N)
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	drop := func([]byte) {}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		sess, _, _, _, _ := r.accept(msgs[i], from, link.UDP, drop)
		if sess == nil {
			b.Fatal("handshake not accepted")
		}
		r.mu.Lock()
		delete(r.byIndex, sess.LocalIndex)
		r.mu.Unlock()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
}

func BenchmarkHandshakeSession(b *testing.B) {
	r, keys := benchRelay(b, 1000)
	msgs := initiations(b, r, keys, b.N)
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		r.handleInitUDP(ctx, msgs[i], from)
		r.mu.Lock()
		p := r.pending[keys[i%len(keys)].Public()]
		r.mu.Unlock()
		if len(p) != 1 {
			b.Fatalf("%d pending sessions for the key, want the one just made", len(p))
		}
		p[0].shutdown("benchmark")
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
	b.StopTimer()
	cancel()
	r.sessions.Wait()
}

func BenchmarkHandshakeResend(b *testing.B) {
	r, keys := benchRelay(b, 1)
	msgs := initiations(b, r, keys, 1)
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.handleInitUDP(ctx, msgs[0], from)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		r.mu.Lock()
		r.answered[secure.MAC1(msgs[0])].resends = 0 // the bound is not what is measured
		r.mu.Unlock()
		r.handleDatagram(ctx, msgs[0], from)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
	b.StopTimer()
	if r.stats.HandshakeResent.Load() != uint64(b.N) || r.stats.Handshakes.Load() != 1 {
		b.Fatalf("resent %d of %d copies, %d handshakes", r.stats.HandshakeResent.Load(), b.N, r.stats.Handshakes.Load())
	}
	r.mu.Lock()
	p := r.pending[keys[0].Public()]
	r.mu.Unlock()
	for _, s := range p {
		s.shutdown("benchmark")
	}
	cancel()
	r.sessions.Wait()
}
