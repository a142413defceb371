package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// StreamHeader is the first thing on every stream the relay opens to an
// agent: which exposure the stream belongs to and who the client is (for
// logs and the PROXY protocol header). Layout: length (2), version (1),
// proto (1), exposure name (1 + n), client address and the relay's public
// address the client reached (each family 0/4/6, address, port).
type StreamHeader struct {
	Proto    Proto
	Exposure string
	Client   netip.AddrPort
	Server   netip.AddrPort

	// Read is how many bytes ReadStreamHeader took from the stream (not
	// sent: the length prefix says it).
	Read int
}

// streamHeaderVersion lets the header evolve independently of the link.
const streamHeaderVersion = 1

// AppendStreamHeader appends the length-prefixed header.
func AppendStreamHeader(b []byte, h StreamHeader) []byte {
	start := len(b)
	b = append(b, 0, 0, streamHeaderVersion, byte(h.Proto))
	b = appendString(b, h.Exposure)
	b = appendAddrPort(b, h.Client)
	b = appendAddrPort(b, h.Server)
	binary.BigEndian.PutUint16(b[start:], uint16(len(b)-start-2))
	return b
}

// ReadStreamHeader reads the header from the start of a stream.
func ReadStreamHeader(r io.Reader) (StreamHeader, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return StreamHeader{}, err
	}
	size := binary.BigEndian.Uint16(n[:])
	if size > 512 {
		return StreamHeader{}, fmt.Errorf("%w: stream header of %d bytes", ErrMalformed, size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return StreamHeader{}, err
	}
	h, err := ParseStreamHeader(body)
	h.Read = len(n) + len(body)
	return h, err
}

// ParseStreamHeader decodes the header body (without its length byte).
func ParseStreamHeader(body []byte) (StreamHeader, error) {
	rd := &reader{b: body}
	if v := rd.u8(); rd.err == nil && v != streamHeaderVersion {
		return StreamHeader{}, fmt.Errorf("%w: stream header version %d", ErrMalformed, v)
	}
	h := StreamHeader{Proto: Proto(rd.u8()), Exposure: rd.str(), Client: rd.addrPort(), Server: rd.addrPort()}
	if err := rd.done(); err != nil {
		return StreamHeader{}, fmt.Errorf("stream header: %w", err)
	}
	if h.Proto != ProtoTCP && h.Proto != ProtoUDP {
		return StreamHeader{}, fmt.Errorf("%w: stream header proto %d", ErrMalformed, h.Proto)
	}
	return h, nil
}

// UDP datagrams of one flow travel on their stream as frames with a 2-byte
// big-endian length, so datagram boundaries survive the byte stream.
const MaxUDPPayload = 65507 // RFC 768 length field minus IPv4+UDP headers

// ErrUDPTooBig reports a datagram that cannot be framed.
var ErrUDPTooBig = errors.New("udp datagram too big")

// AppendUDPFrame appends one framed datagram.
func AppendUDPFrame(b, payload []byte) ([]byte, error) {
	if len(payload) > MaxUDPPayload {
		return b, ErrUDPTooBig
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...), nil
}

// ReadUDPFrame reads one framed datagram into buf (which must hold
// MaxUDPPayload bytes) and returns it.
func ReadUDPFrame(r io.Reader, buf []byte) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	l := int(binary.BigEndian.Uint16(n[:]))
	if l > len(buf) {
		return nil, ErrUDPTooBig
	}
	if _, err := io.ReadFull(r, buf[:l]); err != nil {
		return nil, err
	}
	return buf[:l], nil
}
