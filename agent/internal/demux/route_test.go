package demux

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

func sessionPair(t *testing.T) (initiator, responder *secure.Session) {
	t.Helper()
	ak, _ := secure.GeneratePrivateKey()
	rk, _ := secure.GeneratePrivateKey()
	in, m1, _ := secure.Initiate(ak, rk.Public(), 21, secure.Timestamp(time.Now()), secure.Cookie{})
	resp, err := secure.Consume(rk, m1)
	if err != nil {
		t.Fatal(err)
	}
	rs, m2, _ := resp.Respond(22, nil)
	as, _, err := in.Finish(m2)
	if err != nil {
		t.Fatal(err)
	}
	return as, rs
}

// TestAttachUnsolicitedAdopt: Attach sends a session's Data to its
// PacketConn and its other datagrams to the fallback; a peer's handshake
// initiation (no session of ours) goes to the unsolicited handler; an
// adopted socket's datagrams join the same dispatch and Send leaves from it.
func TestAttachUnsolicitedAdopt(t *testing.T) {
	s, err := Listen(0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	as, rs := sessionPair(t)
	pc := link.NewPacketConn(as, netip.MustParseAddrPort("127.0.0.1:9"), s.Send, nil, nil)
	other := make(chan protocol.Type, 4)
	s.Attach(as.LocalIndex, pc, func(typ protocol.Type, _ []byte, _ netip.AddrPort) { other <- typ })
	unsolicited := make(chan protocol.Type, 4)
	s.SetUnsolicited(func(typ protocol.Type, _ []byte, _ netip.AddrPort) { unsolicited <- typ })

	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), s.LocalAddr().Port())
	sealed, _ := rs.Seal(nil, []byte("kcp"))
	peer.WriteToUDPAddrPort(sealed, to)
	buf := make([]byte, 64)
	done := make(chan string, 1)
	go func() {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			done <- err.Error()
			return
		}
		done <- string(buf[:n])
	}()
	select {
	case got := <-done:
		if got != "kcp" {
			t.Fatalf("attached conn read %q, want %q", got, "kcp")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Data never reached the attached conn")
	}
	peer.WriteToUDPAddrPort(protocol.AppendRefuse(nil, protocol.Refuse{Code: protocol.RefuseUnknownSession, Index: as.LocalIndex}), to)
	expect(t, other, protocol.TypeRefuse, "refusal to the fallback")
	init := protocol.AppendHandshakeHeader(nil, protocol.HandshakeHeader{Type: protocol.TypeHandshakeInit, Version: protocol.Version, Sender: 5})
	peer.WriteToUDPAddrPort(init, to)
	expect(t, unsolicited, protocol.TypeHandshakeInit, "initiation to the unsolicited handler")

	// Adopt: a second socket joins the dispatch.
	extra, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ad := s.Adopt(extra)
	defer ad.Close()
	peer.WriteToUDPAddrPort(init, ad.LocalAddr())
	expect(t, unsolicited, protocol.TypeHandshakeInit, "initiation through the adopted socket")
	if err := ad.Send([]byte("from adopted"), peer.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "from adopted" || from.Port() != ad.LocalAddr().Port() {
		t.Fatalf("adopted Send: got %q from %v (%v), want it from port %d", buf[:n], from, err, ad.LocalAddr().Port())
	}
}

func expect(t *testing.T, c chan protocol.Type, want protocol.Type, what string) {
	t.Helper()
	select {
	case got := <-c:
		if got != want {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("%s: nothing arrived", what)
	}
}
