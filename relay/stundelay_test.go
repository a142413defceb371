package relay

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol/stun"
)

func delayedRequest(d time.Duration, change stun.ChangeRequest) (stun.TxID, []byte) {
	tx := stun.NewTxID()
	m := stun.Message{Type: stun.TypeBindingRequest, TxID: tx, Fingerprint: true}
	if change != 0 {
		m.AddChangeRequest(change)
	}
	m.AddDelay(d)
	return tx, stun.Append(nil, m)
}

// TestSTUNDelayed: a Binding request with PINHOLE-DELAY is answered after
// the delay, not before, from the socket it was sent to (or the one
// CHANGE-REQUEST names), to its source, and the answer is no larger than
// an immediate one; delays out of bounds get 400.
func TestSTUNDelayed(t *testing.T) {
	r := startSTUNRelay(t, true)
	c, me := client(t)
	for _, tc := range []struct {
		name   string
		to     int // socket asked
		change stun.ChangeRequest
		from   int // socket that must answer
	}{
		{"main", 0, 0, 0},
		{"alt-ip-port", altIP | altPort, 0, altIP | altPort},
		{"change-port", 0, stun.ChangePort, altPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const delay = 300 * time.Millisecond
			tx, req := delayedRequest(delay, tc.change)
			start := time.Now()
			if _, err := c.WriteToUDPAddrPort(req, r.stun.addrs[tc.to]); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 2048)
			n, from, err := c.ReadFromUDPAddrPort(buf)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("no delayed answer: %v", err)
			}
			if took < delay {
				t.Fatalf("answered after %v, want at least %v", took, delay)
			}
			if n > 100 {
				t.Fatalf("delayed answer of %d bytes, larger than the 100-byte bound", n)
			}
			m, err := stun.Parse(buf[:n])
			if err != nil || m.TxID != tx || m.Type != stun.TypeBindingSuccess {
				t.Fatalf("got %v %v, want a success for our transaction", m.Type, err)
			}
			if got, _ := m.XORMappedAddress(); got != me {
				t.Fatalf("XOR-MAPPED-ADDRESS %v, want %v", got, me)
			}
			if from != r.stun.addrs[tc.from] {
				t.Fatalf("answered from %v, want %v", from, r.stun.addrs[tc.from])
			}
			t.Logf("answered after %v from %v", took.Round(time.Millisecond), from)
		})
	}
	for _, d := range []time.Duration{time.Millisecond, 11 * time.Minute} {
		_, req := delayedRequest(d, 0)
		m, _ := ask(t, c, r.Addr(), req)
		if e, err := m.ErrorCode(); err != nil || e.Code != stun.CodeBadRequest {
			t.Fatalf("delay %v: got %v %v, want 400", d, m.Type, e)
		}
	}
	if got := r.stun.delayed.accepted.Load(); got != 3 {
		t.Fatalf("stun_delayed = %d, want 3", got)
	}
}

// TestSTUNDelayedBounded: at most maxDelayedPerIP answers wait per source
// IP; more are refused at once with 508 and counted, and stopping the
// relay drops the waiting ones (their timers with them).
func TestSTUNDelayedBounded(t *testing.T) {
	r := startSTUNRelay(t, false)
	c, _ := client(t)
	for range maxDelayedPerIP + 4 {
		_, req := delayedRequest(time.Minute, 0)
		c.WriteToUDPAddrPort(req, r.Addr())
	}
	refusals := 0
	buf := make([]byte, 256)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		m, err := stun.Parse(buf[:n])
		if e, _ := m.ErrorCode(); err != nil || e.Code != stun.CodeInsufficientCapacity {
			t.Fatalf("got %v %v, want 508", m.Type, e)
		}
		refusals++
	}
	if refusals != 4 || r.stun.delayed.refused.Load() != 4 || r.stun.delayed.waiting() != maxDelayedPerIP {
		t.Fatalf("%d refusals (counted %d), %d waiting; want 4, 4, %d", refusals, r.stun.delayed.refused.Load(), r.stun.delayed.waiting(), maxDelayedPerIP)
	}
	r.stun.delayed.stop()
	if n := r.stun.delayed.waiting(); n != 0 {
		t.Fatalf("%d answers wait after stop", n)
	}
}

// TestDelayerTotalBound: the total bound holds across source IPs.
func TestDelayerTotalBound(t *testing.T) {
	var d delayer
	defer d.stop()
	sent := 0
	for i := range maxDelayed + 10 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if d.schedule(time.Hour, nil, netip.AddrPortFrom(ip, 1), func([]byte, netip.AddrPort) { sent++ }) != (i < maxDelayed) {
			t.Fatalf("request %d: wrong verdict", i)
		}
	}
	if d.waiting() != maxDelayed || d.refused.Load() != 10 {
		t.Fatalf("%d waiting, %d refused", d.waiting(), d.refused.Load())
	}
}
