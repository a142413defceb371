package link

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/xtaci/kcp-go/v5"
)

// kcp-go exports its ARQ state machine (kcp.KCP: Send, Recv, Input,
// Update, Check) but keeps four things its own UDPSession uses behind
// unexported fields: the stream-mode switch, the "updated" flag that makes
// the next Update flush at once, the pending window-probe flags, and the
// smoothed RTT. The session driver (arq.go) needs each of them to behave
// exactly like UDPSession, so it reaches them by field name, resolved once
// through reflection against the kcp-go version go.mod pins. The style
// guide rules out go:linkname (which would reach the unexported flush);
// a field offset found by name and checked for its type is the smaller
// step outside the API. When a later kcp-go renames or retypes a field,
// kcpCoreErr says which and NewUDPLink falls back to kcp-go's UDPSession
// (TestKCPCoreFields fails first).
var kcpCore struct {
	stream, updated, probe, srtt uintptr // offsets in kcp.KCP
}

var kcpCoreErr = resolveKCPCore()

func resolveKCPCore() error {
	t := reflect.TypeFor[kcp.KCP]()
	for _, f := range []struct {
		name string
		kind reflect.Kind
		off  *uintptr
	}{
		{"stream", reflect.Int32, &kcpCore.stream},
		{"updated", reflect.Uint32, &kcpCore.updated},
		{"probe", reflect.Uint32, &kcpCore.probe},
		{"rx_srtt", reflect.Int32, &kcpCore.srtt},
	} {
		sf, ok := t.FieldByName(f.name)
		if !ok || sf.Type.Kind() != f.kind || len(sf.Index) != 1 {
			return fmt.Errorf("kcp-go: field KCP.%s (%s) not found", f.name, f.kind)
		}
		*f.off = sf.Offset
	}
	return nil
}

func kcpField[T int32 | uint32](k *kcp.KCP, off uintptr) *T {
	return (*T)(unsafe.Add(unsafe.Pointer(k), off))
}

// kcpSetStream turns on stream mode (UDPSession.SetStreamMode(true)):
// Send appends to the last queued segment instead of starting a message.
func kcpSetStream(k *kcp.KCP) { *kcpField[int32](k, kcpCore.stream) = 1 }

// kcpFlush makes Update flush now, whatever its interval clock says: a
// cleared "updated" flag restarts that clock at the current time, and the
// Update that follows runs kcp-go's full flush (acks, window probes, new
// segments, retransmissions), as UDPSession's flush after Write does.
func kcpFlush(k *kcp.KCP) {
	*kcpField[uint32](k, kcpCore.updated) = 0
	k.Update()
}

// kcpProbing reports window-probe flags waiting for the next flush: a peer
// asked for our window (WASK), or Recv drained a full receive queue and
// the peer should hear the window has opened.
func kcpProbing(k *kcp.KCP) bool { return *kcpField[uint32](k, kcpCore.probe) != 0 }

// kcpSRTT returns the smoothed round-trip time in milliseconds.
func kcpSRTT(k *kcp.KCP) int32 { return *kcpField[int32](k, kcpCore.srtt) }
