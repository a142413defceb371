package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Version is the wire version this build speaks. A peer with another
// version is refused with RefuseVersion, never guessed at.
const Version = 2

// Type is the first byte of every pinhole datagram.
type Type byte

// Datagram types. 0xA1.. keeps the top two bits set so STUN (whose first two
// bits are zero, RFC 8489 §6) is never mistaken for one of ours.
const (
	TypeHandshakeInit Type = 0xA1
	TypeHandshakeResp Type = 0xA2
	TypeData          Type = 0xA3
	TypeRefuse        Type = 0xA4
	TypeCookie        Type = 0xA5
)

func (t Type) String() string {
	switch t {
	case TypeHandshakeInit:
		return "handshake-init"
	case TypeHandshakeResp:
		return "handshake-resp"
	case TypeData:
		return "data"
	case TypeRefuse:
		return "refuse"
	case TypeCookie:
		return "cookie"
	}
	return fmt.Sprintf("type(0x%02x)", byte(t))
}

// Sizes of the fixed parts of each datagram.
const (
	// DataHeaderLen: type, kind, 2 reserved, receiver index (4), counter (8).
	DataHeaderLen = 16
	// HandshakeHeaderLen: type, version, 2 reserved, sender index (4).
	HandshakeHeaderLen = 8
	// RefuseLen: type, code, version, reserved, receiver index (4).
	RefuseLen = 8
	// MaxDatagram bounds every datagram we send or accept; larger input is
	// dropped. 1500-byte Ethernet MTU minus IPv6 (40) and UDP (8) headers.
	MaxDatagram = 1452
)

// ErrShort reports a datagram too short for its type.
var ErrShort = errors.New("datagram too short")

// ErrNotPinhole reports a datagram whose first byte is not a known Type.
var ErrNotPinhole = errors.New("not a pinhole datagram")

// Classify returns the type of a datagram, or ErrNotPinhole.
func Classify(b []byte) (Type, error) {
	if len(b) == 0 {
		return 0, ErrShort
	}
	switch t := Type(b[0]); t {
	case TypeHandshakeInit, TypeHandshakeResp, TypeData, TypeRefuse, TypeCookie:
		return t, nil
	}
	return 0, ErrNotPinhole
}

// DataHeader is the clear part of a Data datagram. The receiver index names
// the session at the receiving end; the counter is the AEAD nonce and the
// replay-window position; the kind says what the sealed payload is. The
// whole header is the AEAD's associated data, so the kind is authenticated.
type DataHeader struct {
	Kind     DataKind
	Receiver uint32
	Counter  uint64
}

// DataKind is the second byte of a Data datagram.
type DataKind byte

const (
	// DataKCP: a KCP packet of the session (the common case).
	DataKCP DataKind = 0
	// DataPathChallenge: 8 random bytes the receiver must echo in a
	// DataPathResponse sent to the address the challenge came from. A
	// session moves its peer to a new address only after that address
	// answers (RFC 9000 §8.2, path validation), so a packet withheld on
	// the path and replayed from elsewhere cannot redirect the traffic.
	DataPathChallenge DataKind = 1
	// DataPathResponse echoes a DataPathChallenge's 8 bytes.
	DataPathResponse DataKind = 2
	// DataForward: on an agent-relay link, a datagram of a peer session
	// for the relay to pass to the other agent of an introduced pair
	// (AppendForward). Outside KCP: no reliable transport inside another.
	DataForward DataKind = 3
	// DataKeepalive: on an agent-relay link over UDP, the agent's
	// heartbeat beside KCP (KeepaliveLen bytes: its send time, then
	// zeros, as long as the answer so the answer never amplifies).
	DataKeepalive DataKind = 4
	// DataKeepaliveAck answers a DataKeepalive to its source: the send
	// time echoed and the address the relay saw it come from
	// (AppendKeepaliveAck).
	DataKeepaliveAck DataKind = 5
	// DataPark: on a link whose ends both spoke FlagParkable in the
	// handshake, the agent asks the relay to drop the idle data
	// conversation of an epoch (ParkLen bytes: the epoch, zero). Outside
	// KCP, as the conversation it parks is the one that would carry it.
	DataPark DataKind = 6
	// DataParkAck answers a DataPark: the epoch, and 1 when the relay
	// parked it (it had no stream and nothing in flight), 0 when not.
	DataParkAck DataKind = 7
	// DataParity: on a UDP link, forward error correction for the KCP
	// datagrams the sender sealed just before it: one Reed-Solomon
	// parity shard over a group of them, named by their counters
	// (AppendParity). The KCP datagrams keep their format; a peer that
	// does not know the kind authenticates it and drops it.
	DataParity DataKind = 8
	// DataLossReport: how many datagrams the sender of the report
	// received of those its peer sealed since the last report
	// (AppendLossReport). The peer sizes its parity from it, and sends
	// parity only to a peer that reports: an older peer never does.
	DataLossReport DataKind = 9
)

// FlagParkable, in the flags byte of a handshake initiation and in the
// capabilities of the relay's handshake payload, says that the sender
// runs a UDP link's control channel on a KCP conversation of its own and
// creates the data conversation (KCP and smux) on the first stream and
// parks it when idle (internal/link/park.go). A link uses that layout
// only when both ends said so; otherwise the control channel is the
// first smux stream, as older builds expect.
const FlagParkable = 1

// ParkLen is the payload size of DataPark and DataParkAck.
const ParkLen = 5

// AppendPark appends a park request or answer for epoch.
func AppendPark(b []byte, epoch uint32, ok bool) []byte {
	b = binary.BigEndian.AppendUint32(b, epoch)
	if ok {
		return append(b, 1)
	}
	return append(b, 0)
}

// ParsePark decodes a DataPark or DataParkAck payload.
func ParsePark(b []byte) (epoch uint32, ok bool, err error) {
	if len(b) != ParkLen || b[4] > 1 {
		return 0, false, ErrMalformed
	}
	return binary.BigEndian.Uint32(b), b[4] == 1, nil
}

// KeepaliveLen is the payload size of both keepalive kinds: the send time
// (8 bytes), the observed IP as 16 bytes (IPv4 mapped) and the port (2).
const KeepaliveLen = 26

// AppendKeepalive appends a keepalive payload carrying sent.
func AppendKeepalive(b []byte, sent uint64) []byte {
	b = binary.BigEndian.AppendUint64(b, sent)
	return append(b, make([]byte, KeepaliveLen-8)...)
}

// AppendKeepaliveAck appends the answer to a keepalive that carried sent
// and came from observed.
func AppendKeepaliveAck(b []byte, sent uint64, observed netip.AddrPort) []byte {
	b = binary.BigEndian.AppendUint64(b, sent)
	ip := observed.Addr().As16()
	b = append(b, ip[:]...)
	return binary.BigEndian.AppendUint16(b, observed.Port())
}

// ParseKeepalive returns the send time of a keepalive payload (also of an
// answer, whose first 8 bytes are the same).
func ParseKeepalive(b []byte) (sent uint64, err error) {
	if len(b) != KeepaliveLen {
		return 0, ErrShort
	}
	return binary.BigEndian.Uint64(b), nil
}

// ParseKeepaliveAck decodes an answer: the echoed send time and the
// observed address (an IPv4 address unmapped).
func ParseKeepaliveAck(b []byte) (sent uint64, observed netip.AddrPort, err error) {
	if len(b) != KeepaliveLen {
		return 0, netip.AddrPort{}, ErrShort
	}
	ip := netip.AddrFrom16([16]byte(b[8:24])).Unmap()
	return binary.BigEndian.Uint64(b), netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[24:])), nil
}

// PathTokenLen is the size of a path challenge's payload.
const PathTokenLen = 8

// AppendDataHeader appends the 16-byte header.
func AppendDataHeader(b []byte, h DataHeader) []byte {
	b = append(b, byte(TypeData), byte(h.Kind), 0, 0)
	b = binary.BigEndian.AppendUint32(b, h.Receiver)
	return binary.BigEndian.AppendUint64(b, h.Counter)
}

// ParseDataHeader decodes the header of a Data datagram.
func ParseDataHeader(b []byte) (DataHeader, error) {
	if len(b) < DataHeaderLen {
		return DataHeader{}, ErrShort
	}
	if Type(b[0]) != TypeData {
		return DataHeader{}, ErrNotPinhole
	}
	return DataHeader{
		Kind:     DataKind(b[1]),
		Receiver: binary.BigEndian.Uint32(b[4:8]),
		Counter:  DataCounter(b),
	}, nil
}

// DataCounter returns the counter of a Data datagram whose header was
// already checked (ParseDataHeader, or a datagram this end sealed): the
// nonce the seal used, one per datagram, in sending order.
func DataCounter(b []byte) uint64 { return binary.BigEndian.Uint64(b[8:DataHeaderLen]) }

// HandshakeHeader is the clear prefix of both handshake messages.
type HandshakeHeader struct {
	Type    Type
	Version byte
	Flags   byte // what the sender can do (FlagParkable); older builds send and ignore 0
	Sender  uint32
}

// AppendHandshakeHeader appends the 8-byte prefix.
func AppendHandshakeHeader(b []byte, h HandshakeHeader) []byte {
	b = append(b, byte(h.Type), h.Version, h.Flags, 0)
	return binary.BigEndian.AppendUint32(b, h.Sender)
}

// ParseHandshakeHeader decodes the prefix; the version is returned as sent
// so the caller can refuse it by name.
func ParseHandshakeHeader(b []byte) (HandshakeHeader, error) {
	if len(b) < HandshakeHeaderLen {
		return HandshakeHeader{}, ErrShort
	}
	t := Type(b[0])
	if t != TypeHandshakeInit && t != TypeHandshakeResp {
		return HandshakeHeader{}, ErrNotPinhole
	}
	return HandshakeHeader{Type: t, Version: b[1], Flags: b[2], Sender: binary.BigEndian.Uint32(b[4:8])}, nil
}
