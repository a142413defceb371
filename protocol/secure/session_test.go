package secure

import (
	"bytes"
	"testing"

	"github.com/pinhole/pinhole/protocol"
)

// TestSealInPlace: a packet sealed where it lies, behind DataHeaderLen
// bytes of room, opens at the peer to the same bytes, in the buffer it
// was given when that has room for the tag; without the room the result
// is still right (a new slice).
func TestSealInPlace(t *testing.T) {
	as, rs := handshake(t, mustKey(t), mustKey(t))
	msg := bytes.Repeat([]byte("kcp packet "), 100)
	for _, spare := range []int{Overhead - protocol.DataHeaderLen, 0} {
		buf := make([]byte, protocol.DataHeaderLen+len(msg), protocol.DataHeaderLen+len(msg)+spare)
		copy(buf[protocol.DataHeaderLen:], msg)
		pkt, err := as.SealInPlace(buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) != len(msg)+Overhead {
			t.Fatalf("sealed %d bytes into %d, want %d", len(msg), len(pkt), len(msg)+Overhead)
		}
		if inPlace := &pkt[0] == &buf[0]; inPlace != (spare > 0) {
			t.Fatalf("spare %d: sealed in the given buffer %v", spare, inPlace)
		}
		got, err := rs.Open(nil, pkt)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("spare %d: opened %d bytes, %v; want the %d sealed", spare, len(got), err, len(msg))
		}
	}
	if _, err := as.SealInPlace(make([]byte, protocol.DataHeaderLen-1)); err == nil {
		t.Fatal("a buffer shorter than the header sealed")
	}
}

// TestSealAndOpenAllocateOnlyTheirOutput: the nonce no longer costs an
// allocation per datagram either way.
func TestSealAndOpenAllocateOnlyTheirOutput(t *testing.T) {
	if raceDetector {
		t.Skip("allocation counts differ under -race")
	}
	as, rs := handshake(t, mustKey(t), mustKey(t))
	msg := make([]byte, 1300)
	sealed := make([]byte, 0, 2048)
	opened := make([]byte, 0, 2048)
	var err error
	allocs := testing.AllocsPerRun(200, func() {
		sealed, err = as.Seal(sealed[:0], msg)
		if err == nil {
			opened, err = rs.Open(opened[:0], sealed)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per Seal and Open, want 0", allocs)
	}
}
