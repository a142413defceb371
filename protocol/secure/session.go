package secure

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/pinhole/pinhole/protocol"
	"golang.org/x/crypto/chacha20poly1305"
)

// Overhead is what sealing adds to a packet: the clear header and the tag.
const Overhead = protocol.DataHeaderLen + chacha20poly1305.Overhead

// rejectAfterMessages stops a session long before the 64-bit nonce could
// wrap (WireGuard uses the same margin); the link reconnects instead.
const rejectAfterMessages = 1<<60 - 1

var (
	// ErrReplay reports a Data packet already received or too old.
	ErrReplay = errors.New("replayed or too old packet")
	// ErrAuth reports a Data packet that fails authentication.
	ErrAuth = errors.New("packet authentication failed")
	// ErrExhausted reports a session that has sent its last allowed packet.
	ErrExhausted = errors.New("session nonce space exhausted")
)

// Session holds the keys of one established link. Seal and Open are safe
// for concurrent use.
type Session struct {
	LocalIndex  uint32
	RemoteIndex uint32
	Peer        PublicKey

	send, recv cipher.AEAD
	sendCount  atomic.Uint64

	mu     sync.Mutex // guards window
	window replayWindow
}

func newSession(local, remote uint32, peer PublicKey, send, recv [hashLen]byte) *Session {
	s := &Session{LocalIndex: local, RemoteIndex: remote, Peer: peer}
	var err error
	if s.send, err = chacha20poly1305.New(send[:]); err != nil {
		panic(err)
	}
	if s.recv, err = chacha20poly1305.New(recv[:]); err != nil {
		panic(err)
	}
	return s
}

// nonces are the 12-byte nonces Seal and Open hand the AEAD. A nonce
// passed through the cipher.AEAD interface escapes, so a fresh one per
// packet was a heap allocation per datagram each way (a third of a
// relay's allocation under bulk). The first four bytes stay zero; only
// the counter is written.
var nonces = sync.Pool{New: func() any { return new([chacha20poly1305.NonceSize]byte) }}

// dataNonce returns a pooled nonce for counter (return it to nonces):
// four zero bytes, then the counter, little-endian.
func dataNonce(counter uint64) *[chacha20poly1305.NonceSize]byte {
	nonce := nonces.Get().(*[chacha20poly1305.NonceSize]byte)
	binary.LittleEndian.PutUint64(nonce[4:], counter)
	return nonce
}

// seal seals plaintext under counter n with additional data hdr,
// appending to dst.
func (s *Session) seal(dst []byte, n uint64, plaintext, hdr []byte) []byte {
	nonce := dataNonce(n)
	out := s.send.Seal(dst, nonce[:], plaintext, hdr)
	nonces.Put(nonce)
	return out
}

// Seal appends a Data datagram carrying plaintext (a KCP packet) to dst.
func (s *Session) Seal(dst, plaintext []byte) ([]byte, error) {
	return s.SealKind(dst, protocol.DataKCP, plaintext)
}

// SealKind appends a Data datagram of the given kind carrying plaintext.
func (s *Session) SealKind(dst []byte, kind protocol.DataKind, plaintext []byte) ([]byte, error) {
	n, err := s.next()
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = protocol.AppendDataHeader(dst, protocol.DataHeader{Kind: kind, Receiver: s.RemoteIndex, Counter: n})
	return s.seal(dst, n, plaintext, dst[start:]), nil
}

// SealInPlace turns b, a KCP packet behind protocol.DataHeaderLen bytes of
// room, into the Data datagram that carries it, in b's own memory: the
// header fills the room, the ciphertext overwrites the packet and the tag
// follows it (in b's capacity when it has Overhead-DataHeaderLen to spare;
// otherwise the result is a new slice). It saves the copy of every
// packet a flush makes into a second buffer just to seal it.
func (s *Session) SealInPlace(b []byte) ([]byte, error) {
	if len(b) < protocol.DataHeaderLen {
		return nil, protocol.ErrShort
	}
	n, err := s.next()
	if err != nil {
		return nil, err
	}
	hdr := protocol.AppendDataHeader(b[:0], protocol.DataHeader{Kind: protocol.DataKCP, Receiver: s.RemoteIndex, Counter: n})
	// The ciphertext starts exactly where the plaintext does: the AEAD
	// allows that overlap (and no other).
	return s.seal(hdr, n, b[protocol.DataHeaderLen:], hdr), nil
}

// next takes the next send counter.
func (s *Session) next() (uint64, error) {
	n := s.sendCount.Add(1) - 1
	if n >= rejectAfterMessages {
		return 0, ErrExhausted
	}
	return n, nil
}

// Open authenticates a Data datagram addressed to this session and appends
// its plaintext to dst. The replay window is only updated after the packet
// authenticates, so forged packets cannot poison it.
func (s *Session) Open(dst, datagram []byte) ([]byte, error) {
	h, err := protocol.ParseDataHeader(datagram)
	if err != nil {
		return dst, err
	}
	if len(datagram) < Overhead {
		return dst, protocol.ErrShort
	}
	s.mu.Lock()
	fresh := s.window.check(h.Counter)
	s.mu.Unlock()
	if !fresh {
		return dst, ErrReplay
	}
	nonce := dataNonce(h.Counter)
	out, err := s.recv.Open(dst, nonce[:], datagram[protocol.DataHeaderLen:], datagram[:protocol.DataHeaderLen])
	nonces.Put(nonce)
	if err != nil {
		return dst, ErrAuth
	}
	s.mu.Lock()
	ok := s.window.update(h.Counter)
	s.mu.Unlock()
	if !ok {
		return dst, ErrReplay // a concurrent Open took the same counter
	}
	return out, nil
}
