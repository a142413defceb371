package link

import (
	"math"
	"time"
	"unsafe"

	"github.com/xtaci/kcp-go/v5"
)

// kcp-go exports its ARQ state machine (kcp.KCP: Send, Recv, Input,
// Update) but keeps four things its own UDPSession uses in unexported
// fields: the stream-mode switch, the "updated" flag that makes the next
// Update flush at once, the pending window-probe flags, and the smoothed
// RTT. The session driver (arq.go) needs each of them to behave exactly
// like UDPSession, so it reaches them at their offsets in the kcp-go
// version go.mod pins. The style guide rules out go:linkname (which would
// reach the unexported flush), and resolving the offsets by name with
// reflect at run time cost the mipsle binary a 64 KiB step; so the
// offsets are constants, and TestKCPCoreFields checks each against
// kcp-go's struct by name and type (a kcp-go upgrade that moves one fails
// it). Every field up to the last of them is 32 bits wide, so the offsets
// are the same on 32- and 64-bit targets (the test checks that too).
const (
	kcpOffSRTT    = 36  // rx_srtt int32
	kcpOffProbe   = 68  // probe uint32
	kcpOffUpdated = 92  // updated uint32
	kcpOffStream  = 108 // stream int32
)

func kcpField[T int32 | uint32](k *kcp.KCP, off uintptr) *T {
	return (*T)(unsafe.Add(unsafe.Pointer(k), off))
}

// kcpSetStream turns on stream mode (UDPSession.SetStreamMode(true)):
// Send appends to the last queued segment instead of starting a message.
func kcpSetStream(k *kcp.KCP) { *kcpField[int32](k, kcpOffStream) = 1 }

// kcpFlush makes Update flush now, whatever its interval clock says: a
// cleared "updated" flag restarts that clock at the current time, and the
// Update that follows runs kcp-go's full flush (acks, window probes, new
// segments, retransmissions), as UDPSession's flush after Write does.
func kcpFlush(k *kcp.KCP) {
	*kcpField[uint32](k, kcpOffUpdated) = 0
	k.Update()
}

// kcpProbing reports window-probe flags waiting for the next flush: a peer
// asked for our window (WASK), or Recv drained a full receive queue and
// the peer should hear the window has opened.
func kcpProbing(k *kcp.KCP) bool { return *kcpField[uint32](k, kcpOffProbe) != 0 }

// kcpSRTT returns the smoothed round-trip time in milliseconds.
func kcpSRTT(k *kcp.KCP) int32 { return *kcpField[int32](k, kcpOffSRTT) }

// kcpHead mirrors kcp.KCP's fields from the first up to snd_buf, so the
// driver can read the send buffer's retransmission times (kcpResendIn);
// TestKCPMirrors checks it against kcp-go's struct field by field.
// Unlike the constants above it holds pointers, so its offsets come from
// the compiler for each target.
type kcpHead struct {
	conv, mtu, mss, state               uint32
	sndUna, sndNxt, rcvNxt, ssthresh    uint32
	rxRttvar, rxSrtt                    int32
	rxRTO, rxMinRTO                     uint32
	sndWnd, rcvWnd, rmtWnd, cwnd, incr  uint32
	probe, tsProbe, probeWait           uint32
	interval, tsFlush, nodelay, updated uint32
	deadLink                            uint32
	fastresend, nocwnd, stream          int32
	logmask                             int32
	sndQueue, rcvQueue, sndBuf          unsafe.Pointer
}

// sendBuf is kcp-go's send buffer: the segments sent and not yet
// acknowledged.
func (h *kcpHead) sendBuf() *kcp.RingBuffer[kcpSegment] {
	return (*kcp.RingBuffer[kcpSegment])(h.sndBuf)
}

// flushClock is KCP's clock at its last flush (Update sets ts_flush to
// that clock plus the interval): right after kcpFlush, now; later, no
// later than now.
func (h *kcpHead) flushClock() uint32 { return h.tsFlush - h.interval }

// kcpSegment mirrors kcp-go's unexported segment, the element of the send
// buffer's ring (checked by TestKCPMirrors too).
type kcpSegment struct {
	conv             uint32
	cmd, frg         uint8
	wnd              uint16
	ts, sn, una, rto uint32
	xmit, resendts   uint32
	fastack, acked   uint32
	data             []byte
}

// kcpRTO returns KCP's current retransmission timeout: a segment sent now
// is due again no sooner.
func kcpRTO(k *kcp.KCP) time.Duration {
	return time.Duration((*kcpHead)(unsafe.Pointer(k)).rxRTO) * time.Millisecond
}

// kcpResendIn returns, right after kcpFlush, how long until the earliest
// retransmission timeout among the segments waiting for an ACK: the only
// thing a timer flush can do for them before then is nothing. It returns
// 0 (flush again after the usual interval) when something else may be
// due sooner: a closed remote window to probe, window flags to send, a
// segment with duplicate ACKs (kcp-go's early retransmit runs on the next
// flush), or segments queued behind the window with none in flight.
//
// kcp-go's own Check caps its answer at the flush interval, so a link
// whose segments wait out a long timeout (a slow or gone peer, the
// first segment's 200 ms before any RTT sample) was woken every 10 ms
// for nothing: during a reconnect storm under 10,000 agents those empty
// flushes were the relay's largest cost.
func kcpResendIn(k *kcp.KCP) time.Duration {
	h := (*kcpHead)(unsafe.Pointer(k))
	if h.rmtWnd == 0 || h.probe != 0 {
		return 0
	}
	buf := h.sendBuf()
	if buf.Len() == 0 {
		return 0
	}
	now := h.flushClock()
	earliest := int32(math.MaxInt32)
	for s := range buf.ForEach {
		if s.acked == 1 {
			continue
		}
		if s.fastack > 0 && s.fastack != math.MaxUint32 {
			return 0
		}
		earliest = min(earliest, int32(s.resendts-now))
	}
	if earliest <= 0 || earliest == math.MaxInt32 {
		return 0
	}
	return time.Duration(earliest) * time.Millisecond
}

// kcpResendAll makes every segment waiting for an ACK due now, with its
// retransmission timeout back at KCP's current one, and reports whether
// there was any. For a peer that moved to a new address (path.go), or
// was heard again after a silence (packetconn.go): what was sent while
// the path was dead is lost, and the timeouts it backed off to meanwhile
// (kcp-go adds half a timeout per retransmission) say nothing about the
// path that works now. The next flush resends them.
func kcpResendAll(k *kcp.KCP) bool {
	h := (*kcpHead)(unsafe.Pointer(k))
	now := h.flushClock()
	found := false
	for s := range h.sendBuf().ForEach {
		if s.acked == 0 {
			s.resendts, s.rto, found = now, h.rxRTO, true
		}
	}
	return found
}
