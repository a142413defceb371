package protocol

import (
	"encoding/binary"
	"fmt"
)

// Proto is the transport of an exposure.
type Proto byte

const (
	ProtoTCP Proto = 1
	ProtoUDP Proto = 2
)

func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", byte(p))
}

// Exposure asks the relay to open RemotePort for the named service.
type Exposure struct {
	Name       string
	Proto      Proto
	RemotePort uint16
}

// Register carries the complete set of exposures the agent wants. It is
// idempotent: the relay opens what is new, keeps what is unchanged and
// closes what is gone, which is how a reload adds or removes one exposure
// without touching the others.
type Register struct {
	Exposures []Exposure
}

func (Register) Type() MsgType { return MsgRegister }

func (m Register) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Exposures)))
	for _, e := range m.Exposures {
		b = appendString(b, e.Name)
		b = append(b, byte(e.Proto))
		b = binary.BigEndian.AppendUint16(b, e.RemotePort)
	}
	return b
}

func parseRegister(r *reader) Register {
	n := int(r.u16())
	var m Register
	for i := 0; i < n && r.err == nil; i++ {
		e := Exposure{Name: r.str(), Proto: Proto(r.u8()), RemotePort: r.u16()}
		if e.Proto != ProtoTCP && e.Proto != ProtoUDP {
			r.fail()
		}
		m.Exposures = append(m.Exposures, e)
	}
	return m
}

// Status is the relay's verdict on one exposure.
type Status byte

const (
	StatusOK         Status = 0
	StatusNotAllowed Status = 1 // port not in the agent's allow_ports
	StatusPortInUse  Status = 2 // another agent or process holds the port
	StatusInvalid    Status = 3 // bad name, port or protocol
	StatusError      Status = 4 // listen failed for another reason (Detail says)
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotAllowed:
		return "not allowed"
	case StatusPortInUse:
		return "port in use"
	case StatusInvalid:
		return "invalid"
	case StatusError:
		return "error"
	}
	return fmt.Sprintf("status(%d)", byte(s))
}

// ExposureStatus reports the outcome for one named exposure.
type ExposureStatus struct {
	Name   string
	Status Status
	Detail string
}

// RegisterReply answers a Register, one entry per requested exposure.
type RegisterReply struct {
	Statuses []ExposureStatus
}

func (RegisterReply) Type() MsgType { return MsgRegisterReply }

func (m RegisterReply) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Statuses)))
	for _, s := range m.Statuses {
		b = appendString(b, s.Name)
		b = append(b, byte(s.Status))
		b = appendString(b, s.Detail)
	}
	return b
}

func parseRegisterReply(r *reader) RegisterReply {
	n := int(r.u16())
	var m RegisterReply
	for i := 0; i < n && r.err == nil; i++ {
		m.Statuses = append(m.Statuses, ExposureStatus{Name: r.str(), Status: Status(r.u8()), Detail: r.str()})
	}
	return m
}
