package link

import (
	"encoding/binary"
	"testing"
)

// TestPathWindow: the driver's windows follow the measured round trip —
// at the floor on a short path, rate × RTT on a long one, capped by
// MaxStreamWindow (KCP's at the receive queue's length) — and smux's
// window updates advertise the stream window.
func TestPathWindow(t *testing.T) {
	a, _ := arqPair(t, DefaultTuning(), nil)
	upd := func() uint32 {
		hdr := []byte{2, smuxCmdUPD, 8, 0, 3, 0, 0, 0}
		body := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 1000), 1<<20)
		var buf [smuxUPDLen]byte
		v := a.rewriteWindow([][]byte{hdr, body}, &buf)
		if binary.LittleEndian.Uint32(body[4:]) != 1<<20 || binary.LittleEndian.Uint32(v[1]) != 1000 {
			t.Fatal("rewrote smux's buffer, or the bytes consumed")
		}
		return binary.LittleEndian.Uint32(v[1][4:])
	}
	size := func(ms int32) {
		a.mu.Lock()
		*kcpField[int32](a.kcp, kcpOffSRTT) = ms
		a.resizeLocked()
		a.mu.Unlock()
	}
	size(1)
	// The floors: sending, one stream's window in packets (above the
	// configured 768); receiving, the configured 1,024.
	if a.sndWnd != (1<<20)/a.mss || a.rcvWnd != 1024 || upd() != 1<<20 {
		t.Fatalf("1 ms: windows %d/%d packets, stream %d: want the floors (%d/1024, 1 MiB)", a.sndWnd, a.rcvWnd, upd(), (1<<20)/a.mss)
	}
	size(40) // 1 Gbit/s × 40 ms = 5 MB
	if want := min(5000000/a.mss, inboxLen); a.sndWnd != want || a.rcvWnd != want || upd() != 5000000 {
		t.Fatalf("40 ms: windows %d/%d packets, stream %d: want %d packets, 5000000 bytes", a.sndWnd, a.rcvWnd, upd(), want)
	}
	size(1000) // capped at DefaultMaxStreamWindow
	if want := min(DefaultMaxStreamWindow/a.mss, inboxLen); a.sndWnd != want || upd() != DefaultMaxStreamWindow {
		t.Fatalf("1 s: window %d packets, stream %d: want the ceiling", a.sndWnd, upd())
	}
	var buf [smuxUPDLen]byte
	psh := [][]byte{{2, 2, 8, 0, 3, 0, 0, 0}, make([]byte, 8)}
	if v := a.rewriteWindow(psh, &buf); &v[1][0] != &psh[1][0] {
		t.Fatal("a data frame was rewritten")
	}
}
