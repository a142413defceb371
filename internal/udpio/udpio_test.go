package udpio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/netsim"
	"golang.org/x/net/ipv4"
)

// counting is a test wrapper like the e2e tests' firewalls: it embeds
// net.PacketConn, so only its own ReadFrom and WriteTo can be called.
type counting struct {
	net.PacketConn
	reads, writes atomic.Int64
}

func (c *counting) ReadFrom(b []byte) (int, net.Addr, error) {
	c.reads.Add(1)
	return c.PacketConn.ReadFrom(b)
}

func (c *counting) WriteTo(b []byte, a net.Addr) (int, error) {
	c.writes.Add(1)
	return c.PacketConn.WriteTo(b, a)
}

// TestAnyPacketConn: a real socket batches; a netsim socket and a wrapper
// take the one-datagram path, the wrapper's methods are the ones called,
// and every kind ends ReadLoop with net.ErrClosed on Close.
func TestAnyPacketConn(t *testing.T) {
	inet := netsim.New(netsim.Options{})
	defer inet.Close()
	h, err := inet.AddHost(netip.MustParseAddr("203.0.113.10"))
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]func() (net.PacketConn, *counting){
		"real": func() (net.PacketConn, *counting) {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return pc, nil
		},
		"netsim": func() (net.PacketConn, *counting) {
			pc, err := h.ListenPacket("udp4", ":0")
			if err != nil {
				t.Fatal(err)
			}
			return pc, nil
		},
		"wrapped": func() (net.PacketConn, *counting) {
			pc, err := h.ListenPacket("udp4", ":0")
			if err != nil {
				t.Fatal(err)
			}
			c := &counting{PacketConn: pc}
			return c, c
		},
	}
	for name, listen := range open {
		t.Run(name, func(t *testing.T) {
			pa, ca := listen()
			pb, cb := listen()
			a, b := New(pa), New(pb)
			if batched := a.batch != nil; batched != (name == "real") {
				t.Errorf("batched %v, want it only on a real socket", batched)
			}
			got := make(chan string, 100)
			ended := make(chan error, 1)
			go func() {
				ended <- b.ReadLoop(func(p []byte, from netip.AddrPort) {
					if from != addrOf(a) {
						t.Errorf("datagram from %v, want %v", from, addrOf(a))
					}
					got <- string(p)
				})
			}()
			for i := range 50 {
				if err := a.Send(fmt.Appendf(nil, "d%d", i), addrOf(b)); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 50 {
				select {
				case g := <-got:
					if want := fmt.Sprintf("d%d", i); g != want {
						t.Fatalf("got %q, want %q", g, want)
					}
				case <-time.After(2 * time.Second):
					t.Fatalf("%d of 50 datagrams arrived", i)
				}
			}
			if ca != nil && (ca.writes.Load() != 50 || cb.reads.Load() < 50) {
				t.Errorf("wrapper saw %d writes, %d reads; want its own methods used", ca.writes.Load(), cb.reads.Load())
			}
			a.Close()
			b.Close()
			if err := <-ended; !errors.Is(err, net.ErrClosed) {
				t.Errorf("ReadLoop ended with %v, want net.ErrClosed", err)
			}
		})
	}
}

func addrOf(c *Conn) netip.AddrPort {
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	if ap.Addr().IsUnspecified() {
		ap = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port())
	}
	return ap
}

// TestSendNowNeverWaitsForTheWriter: with the writer's queue full (no
// writer draining it here), SendNow still sends at once, on the caller's
// goroutine, where Send would wait.
func TestSendNowNeverWaitsForTheWriter(t *testing.T) {
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	dst, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	u := &Conn{PacketConn: sock, batch: ipv4.NewPacketConn(sock), ap: sock, out: make(chan outPkt, 1), done: make(chan struct{})}
	u.out <- outPkt{buf: pool.Get().(*[]byte)} // full, and nobody drains it
	to := dst.LocalAddr().(*net.UDPAddr).AddrPort()
	sent := make(chan error, 1)
	go func() { sent <- u.SendNow([]byte("keepalive answer"), to) }()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SendNow waited for a full writer queue")
	}
	dst.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := dst.Read(buf)
	if err != nil || string(buf[:n]) != "keepalive answer" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}
