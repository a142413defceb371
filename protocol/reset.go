package protocol

import (
	"encoding/binary"
	"fmt"
)

// ResetReason says why an end aborted a tunneled stream.
type ResetReason byte

const (
	// ResetAborted: the connection at the sender's end reset, or a read or
	// write on it failed; the bytes that crossed may be incomplete.
	ResetAborted ResetReason = 1
	// ResetStalled: the sender's reader made no progress for too long, or
	// the link's stall budget was spent (see internal/splice.Guard).
	ResetStalled ResetReason = 2
)

func (r ResetReason) String() string {
	switch r {
	case ResetAborted:
		return "aborted"
	case ResetStalled:
		return "stalled"
	}
	return fmt.Sprintf("reset(%d)", byte(r))
}

// Reset aborts one tunneled stream, named by its smux stream ID (the same
// at both ends). smux has no reset of its own: a closed stream reaches the
// peer as a FIN, indistinguishable from a half-close, and a writer blocked
// on the closed stream's window is never woken. The receiver closes its
// side of the stream and resets (TCP RST) its local connection, so a
// truncated transfer never looks complete. Either end may send it.
type Reset struct {
	Stream uint32
	Reason ResetReason
}

func (Reset) Type() MsgType { return MsgReset }

func (m Reset) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.Stream)
	return append(b, byte(m.Reason))
}

func parseReset(r *reader) Reset { return Reset{Stream: r.u32(), Reason: ResetReason(r.u8())} }
