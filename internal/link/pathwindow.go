package link

import (
	"encoding/binary"
	"time"
)

// A UDP link sizes its windows to its path, as a TCP link does (window.go):
// rate × round trip, between the configured floor and MaxStreamWindow.
// KCP measures the round trip only once packets have crossed, after the
// link and its smux session were set up, so the ARQ driver resizes as the
// smoothed RTT moves:
//
//   - KCP's send and receive windows (in packets): on a lossy path a hole
//     holds the window for a recovery round trip or two, and a window of
//     one round trip's data leaves the sender waiting most of the time.
//     Both cost memory only while filled: the sender's with data not yet
//     acknowledged, the receiver's with segments that arrived beyond a
//     hole. They stop at inboxLen packets (2,048, ~2.6 MB in flight).
//   - smux's stream window: smux fixes it per session at creation (its
//     window updates advertise MaxStreamBuffer), and smux's receiver only
//     advertises it, never enforces it. The driver rewrites the window
//     field of the updates it carries (cmdUPD frames, which smux writes
//     as a header and an 8-byte body in one WriteBuffers call) to the
//     path's window, never below smux's own. Measured on 20 ms each way
//     with 1% loss, a 1 MiB stream window held one stream near 80 Mbit/s
//     whatever KCP's window was (docs/benchmarks.md).
//
// On loopback or a LAN the round trip is a millisecond or less and every
// window stays at its floor. The parked layout's control conversation
// (park.go) is not resized: it carries control messages only.

// smux v2 frame layout (github.com/xtaci/smux frame.go): version, command,
// length (2), stream id (4); a window update's body is bytes consumed (4)
// and window (4), little-endian.
const (
	smuxHeaderLen = 8
	smuxCmdUPD    = 4
	smuxUPDLen    = 8
)

// resizeLocked sizes KCP's windows and the advertised stream window to the
// smoothed RTT, when it has moved by more than an eighth since the last
// sizing.
func (c *arqConn) resizeLocked() {
	if c.freezes || c.kcp == nil {
		return // the parked layout's control conversation keeps its small windows (park.go)
	}
	srtt := kcpSRTT(c.kcp)
	if srtt <= 0 || srtt == c.sizedRTT || abs32(srtt-c.sizedRTT) < c.sizedRTT/8 {
		return
	}
	c.sizedRTT = srtt
	w := c.t.windowForRTT(time.Duration(srtt) * time.Millisecond)
	c.streamWindow.Store(uint32(min(w, 1<<30)))
	// At most the receiver's queue of sealed datagrams (rxqueue.go): a
	// window released at once after a stall arrives as one burst, and
	// what the queue cannot hold is dropped.
	pk := min(w/c.mss, inboxLen)
	snd, rcv := max(pk, c.t.SendWindow), max(pk, c.t.RecvWindow)
	if snd != c.sndWnd || rcv != c.rcvWnd {
		c.sndWnd, c.rcvWnd = snd, rcv
		c.kcp.WndSize(snd, rcv)
	}
}

func abs32(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

// rewriteWindow returns v with a smux window update's advertised window
// raised to the path's, or v unchanged for every other frame. The body is
// copied into upd, never written in smux's buffer.
func (c *arqConn) rewriteWindow(v [][]byte, upd *[smuxUPDLen]byte) [][]byte {
	if len(v) != 2 || len(v[0]) != smuxHeaderLen || v[0][1] != smuxCmdUPD || len(v[1]) != smuxUPDLen {
		return v
	}
	w := c.streamWindow.Load()
	if w <= binary.LittleEndian.Uint32(v[1][4:]) {
		return v
	}
	copy(upd[:], v[1])
	binary.LittleEndian.PutUint32(upd[4:], w)
	return [][]byte{v[0], upd[:]}
}
