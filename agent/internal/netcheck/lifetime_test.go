package netcheck

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/netsim"
	"github.com/pinhole/pinhole/protocol/stun"
)

// testSchedule is DefaultLifetimeSchedule scaled down about 30 times, so
// a measurement takes seconds.
var testSchedule = LifetimeSchedule{
	First:     []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second},
	Max:       20 * time.Second,
	Step:      200 * time.Millisecond,
	Precision: 0.1,
	PerRound:  3,
	Rounds:    2,
	Margin:    300 * time.Millisecond,
	Warmup:    100 * time.Millisecond,
}

// lifetimeChecker is a Checker whose probes open on host.
func lifetimeChecker(host *netsim.Host, relay netip.AddrPort) *Checker {
	return New(Config{Relay: relay, Listen: func() (net.PacketConn, error) {
		return host.ListenPacket("udp4", netip.AddrPortFrom(host.Addr(), 0).String())
	}})
}

func natHost(t *testing.T, inet *netsim.Network, timeout time.Duration) *netsim.Host {
	t.Helper()
	cfg, _ := netsim.PortRestricted.Config()
	cfg.Timeout = timeout
	nat, err := inet.AddNAT(natIP, cfg)
	if err != nil {
		t.Fatal(err)
	}
	host, err := nat.Inside().AddHost(lanIP)
	if err != nil {
		t.Fatal(err)
	}
	return host
}

// TestLifetime measures netsim NATs with known mapping timeouts against a
// real relay: the result is a lower bound within the schedule's
// precision (here 200 ms or 10 %, after two bisection rounds).
func TestLifetime(t *testing.T) {
	for _, timeout := range []time.Duration{1200 * time.Millisecond, 2500 * time.Millisecond} {
		t.Run(timeout.String(), func(t *testing.T) {
			t.Parallel()
			inet := netsim.New(netsim.Options{})
			defer inet.Close()
			relay := simRelay(t, inet)
			c := lifetimeChecker(natHost(t, inet, timeout), relay)
			start := time.Now()
			got, err := c.Lifetime(context.Background(), testSchedule)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("NAT timeout %v: measured %v in %v", timeout, got, time.Since(start).Round(100*time.Millisecond))
			if got > timeout || got < timeout*8/10 {
				t.Fatalf("measured %v, want a lower bound within 20 %% of %v", got, timeout)
			}
		})
	}
}

// TestLifetimeNoNATCapped: without a NAT every delay is answered and the
// result is the longest first-round delay (capped at Max).
func TestLifetimeNoNATCapped(t *testing.T) {
	inet := netsim.New(netsim.Options{})
	defer inet.Close()
	relay := simRelay(t, inet)
	host, _ := inet.AddHost(openIP)
	s := testSchedule
	s.First, s.Max = []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}, 500*time.Millisecond
	got, err := lifetimeChecker(host, relay).Lifetime(context.Background(), s)
	if err != nil || got != 500*time.Millisecond {
		t.Fatalf("got %v, %v, want the cap 500ms", got, err)
	}
}

// TestLifetimeShort: a mapping shorter than every delay probed is
// ErrShortLifetime, not a made-up number.
func TestLifetimeShort(t *testing.T) {
	inet := netsim.New(netsim.Options{})
	defer inet.Close()
	relay := simRelay(t, inet)
	s := testSchedule
	s.First, s.Step, s.Rounds = []time.Duration{time.Second}, 400*time.Millisecond, 1
	_, err := lifetimeChecker(natHost(t, inet, 150*time.Millisecond), relay).Lifetime(context.Background(), s)
	if !errors.Is(err, ErrShortLifetime) {
		t.Fatalf("got %v, want ErrShortLifetime", err)
	}
}

// TestLifetimeNoDelaySupport: a STUN server that ignores PINHOLE-DELAY
// (comprehension-optional) answers at once; the agent says so instead of
// reporting a lifetime.
func TestLifetimeNoDelaySupport(t *testing.T) {
	inet := netsim.New(netsim.Options{})
	defer inet.Close()
	srv, _ := inet.AddHost(relayIP)
	pc, err := srv.ListenPacket("udp4", netip.AddrPortFrom(relayIP, 3478).String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m, err := stun.Parse(buf[:n])
			if err != nil {
				continue
			}
			resp := stun.Message{Type: stun.TypeBindingSuccess, TxID: m.TxID}
			resp.AddXORMappedAddress(from.(*net.UDPAddr).AddrPort())
			pc.WriteTo(stun.Append(nil, resp), from)
		}
	}()
	defer func() { pc.Close(); <-done }()
	_, err = lifetimeChecker(natHost(t, inet, time.Minute), netip.AddrPortFrom(relayIP, 3478)).Lifetime(context.Background(), testSchedule)
	if !errors.Is(err, ErrNoDelay) {
		t.Fatalf("got %v, want ErrNoDelay", err)
	}
}

// TestLifetimeCanceled: a canceled measurement returns at once and leaves
// no probe goroutine behind.
func TestLifetimeCanceled(t *testing.T) {
	inet := netsim.New(netsim.Options{})
	defer inet.Close()
	relay := simRelay(t, inet)
	c := lifetimeChecker(natHost(t, inet, time.Minute), relay)
	time.Sleep(200 * time.Millisecond) // the relay's goroutines start
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Lifetime(ctx, testSchedule); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("returned %v after the start, want about 300ms", took)
	}
	for wait := time.Now().Add(time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(wait) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}
