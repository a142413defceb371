package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/protocol/secure"
	"github.com/pinhole/pinhole/protocol/stun"
)

// startSTUNRelay runs a relay on 127.0.0.1 with alt_listen on 127.0.0.2
// (both on lo), or without alt when alt is false. The alternate port is
// picked free on 127.0.0.2, but the relay also binds it on 127.0.0.1 (and
// its own port on 127.0.0.2), where a test running beside this one may
// hold it: such a collision is retried with fresh ports.
func startSTUNRelay(t *testing.T, alt bool) *Relay {
	t.Helper()
	key, _ := secure.GeneratePrivateKey()
	var r *Relay
	for attempt := 0; ; attempt++ {
		cfg := &Config{Listen: "127.0.0.1:0", PrivateKey: key, Tuning: link.DefaultTuning()}
		if alt {
			c, err := net.ListenPacket("udp", "127.0.0.2:0")
			if err != nil {
				t.Skipf("SKIP: no second loopback address: %v", err)
			}
			cfg.AltListen = c.LocalAddr().String()
			c.Close()
		}
		var err error
		r, err = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 20 {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// ask sends req from c to to and returns the answer and where it came from
// (invalid after a timeout).
func ask(t *testing.T, c *net.UDPConn, to netip.AddrPort, req []byte) (stun.Message, netip.AddrPort) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(req, to); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return stun.Message{}, netip.AddrPort{}
	}
	if n > 100 {
		t.Errorf("answer of %d bytes: larger than the server's 100-byte bound", n)
	}
	m, err := stun.Parse(append([]byte(nil), buf[:n]...))
	if err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	return m, from
}

func client(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestSTUNBinding: a plain Binding request on the relay's port gets the
// source as XOR-MAPPED-ADDRESS, with FINGERPRINT; without alt_listen a
// CHANGE-REQUEST is refused with 420 (RFC 5780 §6.1).
func TestSTUNBinding(t *testing.T) {
	r := startSTUNRelay(t, false)
	c, me := client(t)
	tx := stun.NewTxID()
	m, from := ask(t, c, r.Addr(), stun.BindingRequest(tx, 0))
	if from != r.Addr() || m.Type != stun.TypeBindingSuccess || m.TxID != tx || !m.Fingerprint {
		t.Fatalf("answer %v from %v (fingerprint %v), want a success for our transaction from %v", m.Type, from, m.Fingerprint, r.Addr())
	}
	if got, err := m.XORMappedAddress(); err != nil || got != me {
		t.Fatalf("XOR-MAPPED-ADDRESS %v, %v; want %v", got, err, me)
	}
	if _, err := m.OtherAddress(); err == nil {
		t.Error("OTHER-ADDRESS without alt_listen")
	}
	m, _ = ask(t, c, r.Addr(), stun.BindingRequest(stun.NewTxID(), stun.ChangeIP))
	if e, err := m.ErrorCode(); err != nil || e.Code != stun.CodeUnknownAttribute {
		t.Fatalf("CHANGE-REQUEST without alt_listen: got %v %v, want 420", m.Type, e)
	}
}

// TestSTUNBehaviourDiscovery: with alt_listen, every socket answers, each
// CHANGE-REQUEST comes from the right one of the four, RESPONSE-ORIGIN
// names it and OTHER-ADDRESS names the opposite corner (RFC 5780 §7.3-7.4).
func TestSTUNBehaviourDiscovery(t *testing.T) {
	r := startSTUNRelay(t, true)
	s := r.stun
	c, me := client(t)
	for at := range 4 {
		for _, change := range []stun.ChangeRequest{0, stun.ChangePort, stun.ChangeIP, stun.ChangeIP | stun.ChangePort} {
			want := at
			if change&stun.ChangeIP != 0 {
				want ^= altIP
			}
			if change&stun.ChangePort != 0 {
				want ^= altPort
			}
			m, from := ask(t, c, s.addrs[at], stun.BindingRequest(stun.NewTxID(), change))
			if from != s.addrs[want] {
				t.Errorf("request to %v with change %#x: answer from %v, want %v", s.addrs[at], change, from, s.addrs[want])
				continue
			}
			mapped, _ := m.XORMappedAddress()
			origin, _ := m.ResponseOrigin()
			other, _ := m.OtherAddress()
			if mapped != me || origin != s.addrs[want] || other != s.addrs[at^(altIP|altPort)] {
				t.Errorf("request to %v with change %#x: mapped %v origin %v other %v; want %v %v %v",
					s.addrs[at], change, mapped, origin, other, me, s.addrs[want], s.addrs[at^(altIP|altPort)])
			}
		}
	}
}

// TestSTUNNoReflector: answers go to the source only, never grow with the
// request, and are rate-limited per source; junk gets nothing.
func TestSTUNNoReflector(t *testing.T) {
	r := startSTUNRelay(t, true)
	c, _ := client(t)

	// RESPONSE-PORT would send the answer elsewhere: refused with 420.
	req := stun.Message{Type: stun.TypeBindingRequest, TxID: stun.NewTxID(), Fingerprint: true}
	req.AddResponsePort(9)
	m, _ := ask(t, c, r.Addr(), stun.Append(nil, req))
	if e, err := m.ErrorCode(); err != nil || e.Code != stun.CodeUnknownAttribute {
		t.Fatalf("RESPONSE-PORT: got %v %v, want 420", m.Type, e)
	}
	// PADDING asks for a big answer; ask checks it stays within 100 bytes.
	req = stun.Message{Type: stun.TypeBindingRequest, TxID: stun.NewTxID()}
	req.AddPadding(1000)
	if m, _ := ask(t, c, r.Addr(), stun.Append(nil, req)); m.Type != stun.TypeBindingSuccess {
		t.Fatalf("padded request: got %v", m.Type)
	}
	// A response sent to the server is never answered.
	resp := stun.Message{Type: stun.TypeBindingSuccess, TxID: stun.NewTxID()}
	if _, from := ask(t, c, r.Addr(), stun.Append(nil, resp)); from.IsValid() {
		t.Fatal("the server answered a response")
	}
	// Rate limit: far more requests than the burst get at most the burst
	// (plus what refills meanwhile) answered.
	for range 400 {
		c.WriteToUDPAddrPort(stun.BindingRequest(stun.NewTxID(), 0), r.Addr())
	}
	answered := 0
	buf := make([]byte, 256)
	for {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		answered++
	}
	if answered > int(stunBurst)+20 || answered < 10 {
		t.Fatalf("%d of 400 requests answered, want about the burst of %v", answered, stunBurst)
	}
	if d := r.stun.dropped.Load(); d < 200 {
		t.Fatalf("stun_dropped = %d after a burst of 400", d)
	}
}
