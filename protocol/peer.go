package protocol

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// Peer sessions: two agents of one relay reach each other's services
// end to end. The relay introduces them (PeerIntro: the other's name, key,
// candidates and NAT facts) and forwards their sealed datagrams until a
// direct path works (DataForward); it never sees their session keys.
//
//	agent A                    relay                     agent B
//	PeerInfo ------------------> (candidates, NAT facts) <-- PeerInfo
//	PeerConnect{B} ------------>
//	           <---- PeerIntro{pair, B, key, initiator} / PeerIntro{pair, A, ...} ---->
//	HandshakeInit, Data: wrapped in DataForward{pair} both ways, and punched directly

// MaxCandidates bounds the addresses one agent offers.
const MaxCandidates = 16

// NATFacts is the part of an agent's NAT report its peers need to pick a
// punching strategy.
type NATFacts struct {
	UDP       Tristate
	Mapping   Mapping
	Filtering Filtering
	Ports     PortAllocation
	Delta     int // port delta (PortsSequential), -32768..32767
	Hairpin   Tristate
	Lifetime  time.Duration // second precision on the wire
}

// FactsOf keeps what peers need of a report.
func FactsOf(r NATReport) NATFacts {
	return NATFacts{UDP: r.UDP, Mapping: r.Mapping, Filtering: r.Filtering, Ports: r.Ports,
		Delta: max(-32768, min(32767, r.Delta)), Hairpin: r.Hairpin, Lifetime: r.Lifetime}
}

func appendFacts(b []byte, f NATFacts) []byte {
	b = append(b, byte(f.UDP), byte(f.Mapping), byte(f.Filtering), byte(f.Ports))
	b = binary.BigEndian.AppendUint16(b, uint16(int16(f.Delta)))
	b = append(b, byte(f.Hairpin))
	return binary.BigEndian.AppendUint16(b, uint16(min(f.Lifetime/time.Second, 65535)))
}

func parseFacts(r *reader) NATFacts {
	f := NATFacts{UDP: Tristate(r.u8()), Mapping: Mapping(r.u8()), Filtering: Filtering(r.u8()), Ports: PortAllocation(r.u8())}
	f.Delta = int(int16(r.u16()))
	f.Hairpin = Tristate(r.u8())
	f.Lifetime = time.Duration(r.u16()) * time.Second
	if f.UDP > No || f.Mapping > MappingAddressPortDependent || f.Filtering > FilteringAddressPortDependent ||
		f.Ports > PortsRandom || f.Hairpin > No {
		r.fail()
	}
	return f
}

func appendCandidates(b []byte, c []netip.AddrPort) []byte {
	c = c[:min(len(c), MaxCandidates)]
	b = append(b, byte(len(c)))
	for _, a := range c {
		b = appendAddrPort(b, a)
	}
	return b
}

func parseCandidates(r *reader) []netip.AddrPort {
	n := int(r.u8())
	if n > MaxCandidates {
		r.fail()
		return nil
	}
	var c []netip.AddrPort
	for i := 0; i < n && r.err == nil; i++ {
		c = append(c, r.addrPort())
	}
	return c
}

// PeerInfo (agent -> relay) is what the agent offers peers about itself:
// its local candidates (LAN addresses and a port-mapped address; the
// reflexive one the relay sees for itself) and its NAT facts. Sent after
// Hello and again whenever it changes.
type PeerInfo struct {
	Candidates []netip.AddrPort
	Facts      NATFacts
}

func (PeerInfo) Type() MsgType { return MsgPeerInfo }

func (m PeerInfo) Append(b []byte) []byte {
	return appendFacts(appendCandidates(b, m.Candidates), m.Facts)
}

func parsePeerInfo(r *reader) PeerInfo {
	return PeerInfo{Candidates: parseCandidates(r), Facts: parseFacts(r)}
}

// PeerConnect (agent -> relay) asks to be introduced to the named agent.
type PeerConnect struct {
	Peer string
}

func (PeerConnect) Type() MsgType { return MsgPeerConnect }

func (m PeerConnect) Append(b []byte) []byte { return appendString(b, m.Peer) }

func parsePeerConnect(r *reader) PeerConnect { return PeerConnect{Peer: r.str()} }

// PeerStatus is the relay's answer to a PeerConnect.
type PeerStatus byte

const (
	PeerOK      PeerStatus = 0 // introduced: both sides got a PeerIntro
	PeerOffline PeerStatus = 1 // the agent is listed but not connected
	PeerUnknown PeerStatus = 2 // no agent of that name (or it is the asker)
	PeerGone    PeerStatus = 3 // the pair ended: the other side's link closed
)

func (s PeerStatus) String() string {
	switch s {
	case PeerOK:
		return "ok"
	case PeerOffline:
		return "offline"
	case PeerUnknown:
		return "unknown"
	case PeerGone:
		return "gone"
	}
	return fmt.Sprintf("peer-status(%d)", byte(s))
}

// PeerIntro (relay -> agent) introduces a peer, or says why it cannot
// (Status). Pair names the introduction in DataForward both ways. The
// initiator (the side that asked) starts the handshake. Candidates start
// with the reflexive address the relay sees the peer at (invalid when the
// peer's link is TCP). StartIn is when to start punching, counted from
// receipt: the relay sends the farther agent's intro first and delays the
// nearer one's start by the difference of their round-trip times, so
// probes from both sides cross within milliseconds.
type PeerIntro struct {
	Pair       uint32
	Status     PeerStatus
	Initiator  bool
	Peer       string
	Key        [32]byte
	Candidates []netip.AddrPort
	Facts      NATFacts
	StartIn    time.Duration // millisecond precision on the wire
}

func (PeerIntro) Type() MsgType { return MsgPeerIntro }

func (m PeerIntro) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.Pair)
	init := byte(0)
	if m.Initiator {
		init = 1
	}
	b = append(b, byte(m.Status), init)
	b = appendString(b, m.Peer)
	b = append(b, m.Key[:]...)
	b = appendCandidates(b, m.Candidates)
	b = appendFacts(b, m.Facts)
	return binary.BigEndian.AppendUint16(b, uint16(min(m.StartIn/time.Millisecond, 65535)))
}

func parsePeerIntro(r *reader) PeerIntro {
	m := PeerIntro{Pair: r.u32(), Status: PeerStatus(r.u8())}
	switch r.u8() {
	case 0:
	case 1:
		m.Initiator = true
	default:
		r.fail()
	}
	m.Peer = r.str()
	if k := r.take(32); k != nil {
		m.Key = [32]byte(k)
	}
	m.Candidates = parseCandidates(r)
	m.Facts = parseFacts(r)
	m.StartIn = time.Duration(r.u16()) * time.Millisecond
	if m.Status > PeerGone {
		r.fail()
	}
	return m
}

// ForwardHeaderLen is the pair id in front of a forwarded datagram.
const ForwardHeaderLen = 4

// AppendForward appends the payload of a DataForward datagram: the pair
// id and the peer datagram (itself sealed end to end, or a handshake).
func AppendForward(b []byte, pair uint32, inner []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, pair)
	return append(b, inner...)
}

// ParseForward splits a DataForward payload.
func ParseForward(p []byte) (pair uint32, inner []byte, err error) {
	if len(p) <= ForwardHeaderLen {
		return 0, nil, ErrShort
	}
	return binary.BigEndian.Uint32(p), p[ForwardHeaderLen:], nil
}
