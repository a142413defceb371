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
