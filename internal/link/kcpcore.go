package link

import (
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
