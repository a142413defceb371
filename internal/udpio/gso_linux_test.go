package udpio

import (
	"crypto/rand"
	"crypto/sha256"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// datagrams returns sealed-like random datagrams for to: runs the writer
// must hand the kernel as 4 GSO messages (21 of 1300 bytes ending in a
// shorter one, 5 of 1300, 1400 then 100, 100 and 100).
func datagrams(to netip.AddrPort) []outPkt {
	var ps []outPkt
	for _, run := range [][2]int{{20, 1300}, {1, 700}, {5, 1300}, {1, 1400}, {3, 100}} {
		for range run[0] {
			b := make([]byte, bufSize)
			rand.Read(b[:run[1]])
			ps = append(ps, outPkt{buf: &b, n: run[1], to: to})
		}
	}
	return ps
}

func hashes(ps []outPkt) (h [][32]byte) {
	for _, p := range ps {
		h = append(h, sha256.Sum256((*p.buf)[:p.n]))
	}
	return h
}

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// plainReceive reads want datagrams one recvfrom each, without GRO.
func plainReceive(t *testing.T, c *net.UDPConn, want int) (h [][32]byte) {
	t.Helper()
	buf := make([]byte, 64<<10)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range want {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(h), err)
		}
		h = append(h, sha256.Sum256(buf[:n]))
	}
	return h
}

func sameHashes(t *testing.T, got, want [][32]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d datagrams, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("datagram %d differs from the one sent", i)
		}
	}
}

// TestGSOSameDatagrams: runs sent as GSO messages reach a receiver
// without GRO as the same datagrams, each intact and in order; a receiver
// with GRO gets them coalesced (proof the kernel did segment) and
// ReadLoop splits them back into the same datagrams.
func TestGSOSameDatagrams(t *testing.T) {
	tx := New(listenUDP(t))
	defer tx.Close()
	if !tx.gso || !tx.gro {
		t.Fatalf("gso %v gro %v on loopback, want both (Linux >= 5.0)", tx.gso, tx.gro)
	}
	w := writer{u: tx, addrs: map[netip.AddrPort]*net.UDPAddr{}}

	plain := listenUDP(t)
	ps := datagrams(plain.LocalAddr().(*net.UDPAddr).AddrPort())
	if m := w.build(ps); m != 4 {
		t.Errorf("%d GSO messages for %d datagrams, want 4", m, len(ps))
	}
	w.flush(ps)
	sameHashes(t, plainReceive(t, plain, len(ps)), hashes(ps))

	// A GRO socket read raw: the first run arrives as one buffer.
	raw := listenUDP(t)
	if _, gro := enableOffload(raw); !gro {
		t.Fatal("UDP_GRO refused")
	}
	ps = datagrams(raw.LocalAddr().(*net.UDPAddr).AddrPort())
	w.flush(ps)
	msgs := []ipv4.Message{{Buffers: [][]byte{make([]byte, groSize)}, OOB: make([]byte, oobLen)}}
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ipv4.NewPacketConn(raw).ReadBatch(msgs, 0); err != nil {
		t.Fatal(err)
	}
	if seg := segmentSize(msgs[0].OOB[:msgs[0].NN]); seg != 1300 || msgs[0].N != 20*1300+700 {
		t.Errorf("first read: %d bytes in segments of %d, want 26700 in segments of 1300", msgs[0].N, seg)
	}

	// The same through a GRO receiver's ReadLoop.
	rx := New(listenUDP(t))
	defer rx.Close()
	got := make(chan [32]byte, 100)
	go rx.ReadLoop(func(b []byte, _ netip.AddrPort) { got <- sha256.Sum256(b) })
	ps = datagrams(addrOf(rx))
	w.flush(ps)
	var h [][32]byte
	for range ps {
		select {
		case g := <-got:
			h = append(h, g)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d datagrams through ReadLoop", len(h), len(ps))
		}
	}
	sameHashes(t, h, hashes(ps))
}

// TestGSORefused: a socket whose kernel refuses segmentation (SO_NO_CHECK
// makes every UDP_SEGMENT send fail with EINVAL) still delivers every
// datagram, and the writer stops asking for good.
func TestGSORefused(t *testing.T) {
	c := listenUDP(t)
	rc, _ := c.SyscallConn()
	rc.Control(func(fd uintptr) {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
			t.Fatal(err)
		}
	})
	tx := New(c)
	defer tx.Close()
	if !tx.gso {
		t.Fatal("UDP_SEGMENT unknown to this kernel: nothing to refuse")
	}
	w := writer{u: tx, addrs: map[netip.AddrPort]*net.UDPAddr{}}
	plain := listenUDP(t)
	ps := datagrams(plain.LocalAddr().(*net.UDPAddr).AddrPort())
	w.flush(ps)
	sameHashes(t, plainReceive(t, plain, len(ps)), hashes(ps))
	if tx.gso {
		t.Error("GSO still on after the kernel refused it")
	}
	if m := w.build(ps); m != len(ps) {
		t.Errorf("%d messages for %d datagrams after the fallback, want one each", m, len(ps))
	}
}
