package protocol

import (
	"encoding/binary"
	"time"
)

// Hello opens the control stream. The relay already knows the agent by its
// key; Hello adds the agent's configured name and software version (for
// operators) and its heartbeat interval, which the relay needs to tell a
// quiet agent from a dead one: an agent whose heartbeats are tuned to a
// long NAT mapping lifetime must not be dropped by a shorter agent_timeout.
type Hello struct {
	Name      string
	Software  string
	Heartbeat time.Duration // millisecond precision on the wire
}

func (Hello) Type() MsgType { return MsgHello }

func (m Hello) Append(b []byte) []byte {
	b = appendString(b, m.Name)
	b = appendString(b, m.Software)
	return binary.BigEndian.AppendUint32(b, uint32(m.Heartbeat.Milliseconds()))
}

func parseHello(r *reader) Hello {
	return Hello{Name: r.str(), Software: r.str(), Heartbeat: time.Duration(r.u32()) * time.Millisecond}
}
