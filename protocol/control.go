package protocol

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MsgType names a control message. Control messages travel on the first
// smux stream of a link as frames: type (1), body length (2, big endian),
// body.
type MsgType byte

const (
	MsgHello         MsgType = 1  // agent -> relay, first message
	MsgRegister      MsgType = 2  // agent -> relay, the full set of exposures wanted
	MsgRegisterReply MsgType = 3  // relay -> agent, one status per exposure
	MsgPing          MsgType = 4  // either way
	MsgPong          MsgType = 5  // answer to Ping
	MsgNotice        MsgType = 6  // relay -> agent, why the relay is closing the link
	MsgReset         MsgType = 7  // either way, one tunneled stream aborted
	MsgSetHeartbeat  MsgType = 8  // agent -> relay, its heartbeat interval changed
	MsgPeerInfo      MsgType = 9  // agent -> relay, candidates and NAT facts for peers
	MsgPeerConnect   MsgType = 10 // agent -> relay, introduce me to that agent
	MsgPeerIntro     MsgType = 11 // relay -> agent, a peer introduced (or why not)
)

// MaxControlBody bounds a control frame body (a Register with a few hundred
// exposures fits); larger frames are refused without reading them.
const MaxControlBody = 1<<16 - 1

// Message is one control message.
type Message interface {
	Type() MsgType
	// Append appends the body (not the frame header) to b.
	Append(b []byte) []byte
}

// AppendFrame appends m framed for the control stream.
func AppendFrame(b []byte, m Message) ([]byte, error) {
	start := len(b)
	b = append(b, byte(m.Type()), 0, 0)
	b = m.Append(b)
	n := len(b) - start - 3
	if n > MaxControlBody {
		return b[:start], fmt.Errorf("%v body of %d bytes exceeds %d", m.Type(), n, MaxControlBody)
	}
	binary.BigEndian.PutUint16(b[start+1:], uint16(n))
	return b, nil
}

// WriteMessage frames m and writes it in one Write call, so concurrent
// writers on a stream never interleave halves of frames as long as the
// stream's Write is atomic per call (smux's is).
func WriteMessage(w io.Writer, m Message) error {
	b, err := AppendFrame(nil, m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadMessage reads one frame and decodes it. An unknown message type is an
// error naming it: both ends negotiated the same version, so it is a bug.
func ReadMessage(r io.Reader) (Message, error) {
	var hdr [3]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[1:]))
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read %v body: %w", MsgType(hdr[0]), err)
	}
	return ParseMessage(MsgType(hdr[0]), body)
}

// ParseMessage decodes a body of the given type.
func ParseMessage(t MsgType, body []byte) (Message, error) {
	rd := &reader{b: body}
	var m Message
	switch t {
	case MsgHello:
		m = parseHello(rd)
	case MsgRegister:
		m = parseRegister(rd)
	case MsgRegisterReply:
		m = parseRegisterReply(rd)
	case MsgPing:
		m = Ping(parseHeartbeat(rd))
	case MsgPong:
		m = Pong(parseHeartbeat(rd))
	case MsgNotice:
		m = parseNotice(rd)
	case MsgReset:
		m = parseReset(rd)
	case MsgSetHeartbeat:
		m = parseSetHeartbeat(rd)
	case MsgPeerInfo:
		m = parsePeerInfo(rd)
	case MsgPeerConnect:
		m = parsePeerConnect(rd)
	case MsgPeerIntro:
		m = parsePeerIntro(rd)
	default:
		return nil, fmt.Errorf("%w: unknown control message %v", ErrMalformed, t)
	}
	if err := rd.done(); err != nil {
		return nil, fmt.Errorf("%v: %w", t, err)
	}
	return m, nil
}

func (t MsgType) String() string {
	switch t {
	case MsgHello:
		return "hello"
	case MsgRegister:
		return "register"
	case MsgRegisterReply:
		return "register-reply"
	case MsgPing:
		return "ping"
	case MsgPong:
		return "pong"
	case MsgNotice:
		return "notice"
	case MsgReset:
		return "reset"
	case MsgSetHeartbeat:
		return "set-heartbeat"
	case MsgPeerInfo:
		return "peer-info"
	case MsgPeerConnect:
		return "peer-connect"
	case MsgPeerIntro:
		return "peer-intro"
	}
	return fmt.Sprintf("msg(%d)", byte(t))
}
