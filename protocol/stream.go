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
// logs and the PROXY protocol header). Layout: version (1), proto (1),
// exposure name (1 + n), client address (family 0/4/6, address, port).
type StreamHeader struct {
	Proto    Proto
	Exposure string
	Client   netip.AddrPort
}

// streamHeaderVersion lets the header evolve independently of the link.
const streamHeaderVersion = 1

// maxStreamHeader bounds the header: 3 + 255 + 1 + 16 + 2.
const maxStreamHeader = 3 + MaxString + 19

// AppendStreamHeader appends the length-prefixed header (1 byte length).
func AppendStreamHeader(b []byte, h StreamHeader) []byte {
	start := len(b)
	b = append(b, 0, streamHeaderVersion, byte(h.Proto))
	b = appendString(b, h.Exposure)
	b = appendAddrPort(b, h.Client)
	b[start] = byte(len(b) - start - 1)
	return b
}

// ReadStreamHeader reads the header from the start of a stream.
func ReadStreamHeader(r io.Reader) (StreamHeader, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return StreamHeader{}, err
	}
	body := make([]byte, n[0])
	if _, err := io.ReadFull(r, body); err != nil {
		return StreamHeader{}, err
	}
	return ParseStreamHeader(body)
}

// ParseStreamHeader decodes the header body (without its length byte).
func ParseStreamHeader(body []byte) (StreamHeader, error) {
	rd := &reader{b: body}
	if v := rd.u8(); rd.err == nil && v != streamHeaderVersion {
		return StreamHeader{}, fmt.Errorf("%w: stream header version %d", ErrMalformed, v)
	}
	h := StreamHeader{Proto: Proto(rd.u8()), Exposure: rd.str(), Client: rd.addrPort()}
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
