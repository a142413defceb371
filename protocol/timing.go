package protocol

import (
	"encoding/binary"
	"time"
)

// Timing rules both ends apply, so neither can drift from the other: the
// agent picks and announces its heartbeat interval (Hello, and
// SetHeartbeat when it changes mid-link), and the relay gives up on an agent
// only after SilenceLimit of that interval has passed without a word: no
// authenticated packet at all, since the agent skips its Pings while its
// link carries other traffic.
const (
	// DefaultHeartbeat is the interval when none is configured or
	// measured: inside the 30 s UDP mapping lifetime common on home
	// routers (RFC 4787 REQ-5 asks for at least 2 minutes; routers in the
	// field do less).
	DefaultHeartbeat = 15 * time.Second
	// MissedHeartbeats is how many announced intervals of silence make the
	// relay drop an agent: two lost heartbeats on a lossy uplink are
	// survived.
	MissedHeartbeats = 3
	// HeartbeatSlack covers a round trip and the scheduling of both ends
	// (the agent's jitter only shortens its gaps).
	HeartbeatSlack = 2 * time.Second
)

// SilenceLimit is how long the relay waits, without any packet from an
// agent that announced interval, before it drops the agent.
func SilenceLimit(interval time.Duration) time.Duration {
	if interval <= 0 {
		interval = DefaultHeartbeat
	}
	return MissedHeartbeats*interval + HeartbeatSlack
}

// SetHeartbeat tells the relay the agent's new heartbeat interval (it was
// tuned to a measured NAT mapping lifetime, or the config was reloaded);
// the relay's watchdog follows it from then on.
type SetHeartbeat struct {
	Interval time.Duration // millisecond precision on the wire
}

func (SetHeartbeat) Type() MsgType { return MsgSetHeartbeat }

func (m SetHeartbeat) Append(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, uint32(m.Interval.Milliseconds()))
}

func parseSetHeartbeat(r *reader) SetHeartbeat {
	return SetHeartbeat{Interval: time.Duration(r.u32()) * time.Millisecond}
}
