package secure

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/pinhole/pinhole/protocol"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the handshake messages. Message 1: header, e, sealed s, sealed
// payload (timestamp and cookie echo), mac1, mac2. Message 2: header,
// receiver index, e, sealed payload.
const (
	TimestampLen = 12
	tagLen       = chacha20poly1305.Overhead
	initPayload  = TimestampLen + CookieLen
	noiseInitLen = protocol.HandshakeHeaderLen + KeySize + KeySize + tagLen + initPayload + tagLen
	InitLen      = noiseInitLen + 2*MACLen
	respFixedLen = protocol.HandshakeHeaderLen + 4 + KeySize + tagLen
	// MaxRespPayload bounds the responder's payload.
	MaxRespPayload = 64
)

// prologue binds the protocol and its version into the handshake hash so a
// message cannot be reinterpreted under another version (Noise spec §6).
var prologue = []byte("pinhole handshake v1")

// ErrVersion is returned for a handshake in a version this build does not
// speak; the caller answers with a Refuse.
var ErrVersion = errors.New("unsupported protocol version")

// Initiation is the initiator's state between sending message 1 and
// receiving message 2.
type Initiation struct {
	ss        symmetricState
	static    *Keypair
	ephemeral *Keypair
	peer      PublicKey
	index     uint32
	mac1      [MACLen]byte
}

// Initiate builds message 1 to the responder whose static key is peer.
// index is the initiator's session index; ts is the replay-protection
// timestamp (Timestamp(now)); cookie is the last cookie the responder
// handed out (zero for none), echoed encrypted and used for mac2.
// An initiator that handshakes with the same responder again and again
// keeps an Initiator instead (two scalar multiplications less each time).
func Initiate(static PrivateKey, peer PublicKey, index uint32, ts [TimestampLen]byte, cookie Cookie) (*Initiation, []byte, error) {
	return InitiateFlags(static, peer, index, ts, cookie, 0)
}

// InitiateFlags is Initiate with capability flags in the clear header
// (protocol.FlagParkable). They are covered by mac1, not by the Noise
// hash: a flag cleared on the path only makes the relay answer as an
// older one would.
func InitiateFlags(static PrivateKey, peer PublicKey, index uint32, ts [TimestampLen]byte, cookie Cookie, flags byte) (*Initiation, []byte, error) {
	p, err := NewInitiator(static, peer)
	if err != nil {
		return nil, nil, err
	}
	return p.InitiateFlags(index, ts, cookie, flags)
}

// Initiator is an initiator's static key prepared for one responder: the
// key made ready for X25519 and its static-static Diffie-Hellman result
// (ss, the same in every handshake of the pair; WireGuard precomputes it
// too). Each Initiate then costs two scalar multiplications (a fresh
// ephemeral key, es) instead of four. It is safe for concurrent use.
type Initiator struct {
	static *Keypair
	peer   PublicKey
	ss     []byte
}

// NewInitiator prepares static for handshakes with the responder whose
// static key is peer.
func NewInitiator(static PrivateKey, peer PublicKey) (*Initiator, error) {
	kp := NewKeypair(static)
	ss, err := kp.dh(peer[:])
	if err != nil {
		return nil, fmt.Errorf("handshake with relay key: %w", err)
	}
	return &Initiator{static: kp, peer: peer, ss: ss}, nil
}

// Initiate is the package's Initiate with the prepared key.
func (p *Initiator) Initiate(index uint32, ts [TimestampLen]byte, cookie Cookie) (*Initiation, []byte, error) {
	return p.InitiateFlags(index, ts, cookie, 0)
}

// InitiateFlags is the package's InitiateFlags with the prepared key.
func (p *Initiator) InitiateFlags(index uint32, ts [TimestampLen]byte, cookie Cookie, flags byte) (*Initiation, []byte, error) {
	e, err := GeneratePrivateKey()
	if err != nil {
		return nil, nil, err
	}
	return p.initiateWith(index, ts, cookie, e, flags)
}

func (p *Initiator) initiateWith(index uint32, ts [TimestampLen]byte, cookie Cookie, e PrivateKey, flags byte) (*Initiation, []byte, error) {
	peer := p.peer
	in := &Initiation{static: p.static, ephemeral: NewKeypair(e), peer: peer, index: index}
	msg := protocol.AppendHandshakeHeader(make([]byte, 0, InitLen),
		protocol.HandshakeHeader{Type: protocol.TypeHandshakeInit, Version: protocol.Version, Flags: flags, Sender: index})
	in.ss.initialize(prologue)
	in.ss.mixHash(peer[:]) // pre-message: <- s

	// -> e
	epub := in.ephemeral.Public()
	msg = append(msg, epub[:]...)
	in.ss.mixHash(epub[:])
	// es
	k, err := in.ephemeral.dh(peer[:])
	if err != nil {
		return nil, nil, fmt.Errorf("handshake with relay key: %w", err)
	}
	in.ss.mixKey(k)
	// s
	spub := in.static.Public()
	msg = in.ss.encryptAndHash(msg, spub[:])
	in.ss.mixKey(p.ss) // ss
	msg = in.ss.encryptAndHash(msg, append(ts[:], cookie[:]...))
	msg = appendMACs(msg, peer, cookie)
	in.mac1 = MAC1(msg)
	return in, msg, nil
}

// MAC1 returns the mac1 of the message 1 this initiation sent: the
// associated data of a CookieReply answering it.
func (in *Initiation) MAC1() [MACLen]byte { return in.mac1 }

// Finish consumes message 2 and returns the established session and the
// responder's payload.
func (in *Initiation) Finish(msg []byte) (*Session, []byte, error) {
	h, err := protocol.ParseHandshakeHeader(msg)
	if err != nil {
		return nil, nil, err
	}
	if h.Type != protocol.TypeHandshakeResp {
		return nil, nil, protocol.ErrNotPinhole
	}
	if h.Version != protocol.Version {
		return nil, nil, ErrVersion
	}
	if len(msg) < respFixedLen || len(msg) > respFixedLen+MaxRespPayload {
		return nil, nil, protocol.ErrShort
	}
	p := msg[protocol.HandshakeHeaderLen:]
	if binary.BigEndian.Uint32(p[:4]) != in.index {
		return nil, nil, errors.New("handshake response for another session")
	}
	p = p[4:]
	ss := in.ss // work on a copy so a forged response leaves us able to take the real one
	re := p[:KeySize]
	ss.mixHash(re)
	k, err := in.ephemeral.dh(re) // ee
	if err != nil {
		return nil, nil, err
	}
	ss.mixKey(k)
	k, err = in.static.dh(re) // se
	if err != nil {
		return nil, nil, err
	}
	ss.mixKey(k)
	payload, err := ss.decryptAndHash(p[KeySize:])
	if err != nil {
		return nil, nil, err
	}
	send, recv := ss.split()
	return newSession(in.index, h.Sender, in.peer, send, recv), payload, nil
}

// Response is the responder's state after reading a valid message 1.
type Response struct {
	ss        symmetricState
	Peer      PublicKey // the initiator's authenticated static key
	PeerIndex uint32
	Flags     byte // of the initiation's header (protocol.FlagParkable)
	Timestamp [TimestampLen]byte
	Cookie    Cookie // echoed cookie; zero when the initiator had none
	re        []byte
	ssDH      []byte // the static-static DH result, for StaticDH.Keep
}

// Consume reads message 1 with the responder's static key. The caller must
// first check mac1 (MACChecker) and then that Peer is allowed and that
// Timestamp is fresh, or Cookie valid, before Respond. Consume does not
// check the MACs: they concern the address a message came from, which only
// the caller knows. A responder that answers many handshakes keeps a
// Keypair and calls its Consume instead (one scalar multiplication less).
func Consume(static PrivateKey, msg []byte) (*Response, error) {
	return NewKeypair(static).Consume(msg)
}

// Consume is Consume with the responder's prepared static key.
func (kp *Keypair) Consume(msg []byte) (*Response, error) {
	return kp.ConsumeCached(msg, nil)
}

// StaticDH keeps a responder's static-static Diffie-Hellman results (ss)
// per initiator key: the same in every handshake of a pair, so a relay
// that keeps them for its listed agents pays four scalar multiplications
// a handshake instead of five. Only keys the caller vouches for are kept
// (Keep), so the map is bounded by the caller's list, not by what
// strangers send. A StaticDH belongs to one responder key. The zero
// value is ready; it is safe for concurrent use.
type StaticDH struct {
	mu sync.Mutex
	m  map[PublicKey][]byte
}

// Keep remembers the ss of r's initiator, which the caller accepts.
func (c *StaticDH) Keep(r *Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[PublicKey][]byte{}
	}
	c.m[r.Peer] = r.ssDH
}

// Forget drops key's ss (its initiator is no longer accepted).
func (c *StaticDH) Forget(key PublicKey) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

func (c *StaticDH) get(key PublicKey) []byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// ConsumeCached is Consume taking the ss from cache when it holds the
// initiator's key (nil: none kept).
func (kp *Keypair) ConsumeCached(msg []byte, cache *StaticDH) (*Response, error) {
	h, err := protocol.ParseHandshakeHeader(msg)
	if err != nil {
		return nil, err
	}
	if h.Type != protocol.TypeHandshakeInit {
		return nil, protocol.ErrNotPinhole
	}
	if h.Version != protocol.Version {
		return nil, ErrVersion
	}
	if len(msg) != InitLen {
		return nil, protocol.ErrShort
	}
	msg = msg[:noiseInitLen]
	r := &Response{PeerIndex: h.Sender, Flags: h.Flags}
	r.ss.initialize(prologue)
	spub := kp.Public()
	r.ss.mixHash(spub[:])

	p := msg[protocol.HandshakeHeaderLen:]
	r.re = append([]byte(nil), p[:KeySize]...)
	r.ss.mixHash(r.re)
	k, err := kp.dh(r.re) // es
	if err != nil {
		return nil, err
	}
	r.ss.mixKey(k)
	p = p[KeySize:]
	s, err := r.ss.decryptAndHash(p[:KeySize+tagLen])
	if err != nil {
		return nil, err
	}
	copy(r.Peer[:], s)
	k = cache.get(r.Peer) // ss
	if k == nil {
		if k, err = kp.dh(r.Peer[:]); err != nil {
			return nil, err
		}
	}
	r.ssDH = k
	r.ss.mixKey(k)
	ts, err := r.ss.decryptAndHash(p[KeySize+tagLen:])
	if err != nil {
		return nil, err
	}
	copy(r.Timestamp[:], ts[:TimestampLen])
	copy(r.Cookie[:], ts[TimestampLen:])
	return r, nil
}

// Respond builds message 2 carrying payload and returns the session.
func (r *Response) Respond(index uint32, payload []byte) (*Session, []byte, error) {
	if len(payload) > MaxRespPayload-tagLen {
		return nil, nil, fmt.Errorf("handshake payload of %d bytes too long", len(payload))
	}
	ek, err := GeneratePrivateKey()
	if err != nil {
		return nil, nil, err
	}
	e := NewKeypair(ek)
	msg := protocol.AppendHandshakeHeader(make([]byte, 0, respFixedLen+len(payload)),
		protocol.HandshakeHeader{Type: protocol.TypeHandshakeResp, Version: protocol.Version, Sender: index})
	msg = binary.BigEndian.AppendUint32(msg, r.PeerIndex)
	epub := e.Public()
	msg = append(msg, epub[:]...)
	r.ss.mixHash(epub[:])
	k, err := e.dh(r.re) // ee
	if err != nil {
		return nil, nil, err
	}
	r.ss.mixKey(k)
	k, err = e.dh(r.Peer[:]) // se
	if err != nil {
		return nil, nil, err
	}
	r.ss.mixKey(k)
	msg = r.ss.encryptAndHash(msg, payload)
	recv, send := r.ss.split()
	return newSession(index, r.PeerIndex, r.Peer, send, recv), msg, nil
}
