package link

import (
	"encoding/binary"
	"unsafe"

	"github.com/xtaci/kcp-go/v5"
)

// Freezing: the control conversation of a parked link (park.go) is idle
// for hours, and kcp-go's KCP state for it is about 28 KB (three 64-slot
// segment rings, the output buffer, the reorder heap) held for nothing:
// at 1,000 parked agents it was two thirds of the relay's heap. While
// nothing is in flight either way, what the conversation needs to go on
// is thirteen 32-bit words at the start of kcp.KCP: the sequence numbers
// (snd_una, snd_nxt, rcv_nxt), the RTT estimate and the windows. So the
// driver keeps those words and drops the rest; the next segment either
// way (a Write, or a datagram arriving) rebuilds KCP with the same
// settings and puts the words back. Nothing changes on the wire: each end
// freezes on its own, and its peer cannot tell.
//
// Idle means: nothing queued or unacknowledged to send, nothing unread,
// no window probe owed, the peer's window open, and no segment held out
// of order waiting for a gap to fill (KCP has ACKed those one by one, so
// dropping one would lose it: noteSegments tracks the highest sequence
// number input, and the gap is closed when rcv_nxt has passed it).

// The frozen words are KCP's fields from snd_una (offset 16) to incr,
// all 32 bits wide (TestKCPCoreFields checks names, types and offsets).
const (
	kcpOffUna      = 16
	kcpOffRcvNxt   = 24
	kcpOffRmtWnd   = 56
	kcpFrozenWords = 13
	kcpFrozenSRTT  = (kcpOffSRTT - kcpOffUna) / 4
)

func kcpWords(k *kcp.KCP) *[kcpFrozenWords]uint32 {
	return (*[kcpFrozenWords]uint32)(unsafe.Add(unsafe.Pointer(k), kcpOffUna))
}

// noteSegments records the highest data segment in a KCP datagram
// (segments: conv 4, cmd 1, frg 1, wnd 2, ts 4, sn 4, una 4, len 4, data).
func (c *arqConn) noteSegments(p []byte) {
	if !c.freezes {
		return
	}
	for len(p) >= kcp.IKCP_OVERHEAD {
		n := int(binary.LittleEndian.Uint32(p[20:]))
		if sn := binary.LittleEndian.Uint32(p[12:]); p[4] == kcp.IKCP_CMD_PUSH && int32(sn+1-c.rcvTop) > 0 {
			c.rcvTop = sn + 1
		}
		if n > len(p)-kcp.IKCP_OVERHEAD {
			return
		}
		p = p[kcp.IKCP_OVERHEAD+n:]
	}
}

// freezeLocked drops the KCP state of an idle conversation that freezes.
func (c *arqConn) freezeLocked() {
	k := c.kcp
	if !c.freezes || k == nil || c.closed || len(c.pending) > 0 || k.WaitSnd() > 0 || k.PeekSize() >= 0 || kcpProbing(k) {
		return
	}
	w := kcpWords(k)
	if int32(c.rcvTop-*kcpField[uint32](k, kcpOffRcvNxt)) > 0 || *kcpField[uint32](k, kcpOffRmtWnd) == 0 {
		return // a segment waits out of order, or the peer's window is shut
	}
	c.frozen = *w
	c.kcp = nil
	c.freezeN.Add(1)
}

// thawLocked rebuilds a frozen conversation's KCP state.
func (c *arqConn) thawLocked() {
	if c.kcp == nil {
		k := c.newKCP()
		*kcpWords(k) = c.frozen
		c.kcp = k
	}
}

// peekLocked is KCP's PeekSize, -1 while frozen.
func (c *arqConn) peekLocked() int {
	if c.kcp == nil {
		return -1
	}
	return c.kcp.PeekSize()
}

// frozenNow reports whether the KCP state is dropped right now.
func (c *arqConn) frozenNow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kcp == nil
}
