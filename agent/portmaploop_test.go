package agent

import (
	"context"
	"encoding/binary"
	"github.com/pinhole/pinhole/internal/slog"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent/internal/portmap"
	"github.com/pinhole/pinhole/protocol/secure"
)

// pcpGateway is a minimal PCP server on loopback (RFC 6887 MAP): it grants
// what is asked on external port internal+1, counts requests and keeps
// the mappings; restart forgets them and starts a new epoch.
type pcpGateway struct {
	conn *net.UDPConn
	mu   sync.Mutex
	maps map[uint16]uint32 // internal port -> lifetime
	reqs int
	born time.Time
}

func newPCPGateway(t *testing.T) *pcpGateway {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	g := &pcpGateway{conn: c, maps: map[uint16]uint32{}, born: time.Now().Add(-time.Hour)}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1100)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 60 || buf[0] != 2 || buf[1] != 1 {
				continue
			}
			b := append([]byte(nil), buf[:60]...)
			life, internal := binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint16(b[40:])
			g.mu.Lock()
			g.reqs++
			if life == 0 {
				delete(g.maps, internal)
			} else {
				g.maps[internal] = life
			}
			epoch := uint32(time.Since(g.born) / time.Second)
			g.mu.Unlock()
			b[1] |= 0x80
			binary.BigEndian.PutUint32(b[8:], epoch)
			clear(b[12:24])
			binary.BigEndian.PutUint16(b[42:], internal+1)
			ext := netip.MustParseAddr("198.51.100.7").As16()
			copy(b[44:], ext[:])
			c.WriteToUDPAddrPort(b, from)
		}
	}()
	return g
}

func (g *pcpGateway) state() (reqs int, maps int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reqs, len(g.maps)
}

func (g *pcpGateway) restart() {
	g.mu.Lock()
	g.maps, g.born = map[uint16]uint32{}, time.Now()
	g.mu.Unlock()
}

// TestPortmapLoop runs the agent's port-mapping sibling against a PCP
// gateway on loopback with a 2 s lease: the mapping shows in MappedAddr
// and status, is renewed at about half the lifetime, is back on the
// gateway after it restarts, and is deleted when the agent stops.
func TestPortmapLoop(t *testing.T) {
	gw := newPCPGateway(t)
	silent, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer silent.Close()
	gwPort := uint16(gw.conn.LocalAddr().(*net.UDPAddr).Port)
	lo := netip.MustParseAddr("127.0.0.1")
	portmapConfig = func(port uint16) portmap.Config {
		return portmap.Config{Port: port, Gateway: lo, Local: lo, PMPPort: gwPort, Lifetime: 2 * time.Second,
			SSDP: silent.LocalAddr().(*net.UDPAddr).AddrPort()}
	}
	defer func() { portmapConfig = func(port uint16) portmap.Config { return portmap.Config{Port: port} } }()

	key, _ := secure.GeneratePrivateKey()
	a, err := New(&Config{Name: "pm", PrivateKey: key, PortMapping: true,
		Relays: []Relay{{Address: "127.0.0.1:9", PublicKey: key.Public()}}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	want := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), a.sock.LocalAddr().Port()+1)
	waitFor(t, 3*time.Second, "mapped address", func() bool { return a.MappedAddr() == want })
	if st := a.Status(); st.PortMapping == nil || st.PortMapping.Protocol != "pcp" || st.PortMapping.Address != want.String() {
		t.Errorf("status port mapping %+v, want pcp %v", st.PortMapping, want)
	}

	// Renewals at half of 2 s (jittered ±20 %): 3 more within 4 s.
	r0, _ := gw.state()
	time.Sleep(4 * time.Second)
	if r, _ := gw.state(); r-r0 < 2 || r-r0 > 6 {
		t.Errorf("%d renewals in 4 s with a 2 s lease, want about 4", r-r0)
	}

	gw.restart()
	waitFor(t, 3*time.Second, "mapping back after the gateway restarted", func() bool { _, m := gw.state(); return m == 1 })

	cancel()
	<-done
	if _, m := gw.state(); m != 0 {
		t.Error("mapping still on the gateway after the agent stopped")
	}
	if a.MappedAddr().IsValid() {
		t.Error("MappedAddr still set after the agent stopped")
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("no %s within %v", what, limit)
}
