package secure

import (
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/pinhole/pinhole/protocol"
)

// Message 1 ends in two MACs, after the Noise message (WireGuard's
// whitepaper §5.4.4 and §5.4.7 describe the same scheme):
//
//   - mac1 is keyed by a hash of the responder's public key. Anyone who
//     knows that key can compute it, but blind junk (a forged 0xA1 byte from
//     any port) cannot: the relay checks mac1 before a message costs any
//     handshake budget or any Diffie-Hellman work.
//   - mac2 is keyed by a cookie, a MAC of the initiator's source address
//     and port under a secret the responder rotates. The responder hands a
//     cookie out (in a CookieReply, sent only to that address) when it is
//     under load or wants proof of freshness; a message with a valid mac2
//     proves its sender receives at its source address, so a flood from
//     other ports behind the same NAT cannot spend that sender's budget.
//
// The same cookie is also echoed inside the encrypted payload of message 1.
// Only the holder of the initiator's static key can put it there, and the
// cookie is at most two rotations old, so such a message is fresh: the
// responder accepts it even when its timestamp is not newer than the last
// one seen (an agent whose clock was wrong), and lets it displace
// unconfirmed sessions (replays) of the same key.

// Sizes of the MAC trailer of message 1 and of cookies.
const (
	MACLen    = 16
	CookieLen = 16
	// cookieRotation is how often the responder draws a new cookie secret
	// (WireGuard: 2 minutes). A cookie stays valid for up to two periods.
	cookieRotation = 2 * time.Minute
)

// Cookie is a responder-chosen proof of address and freshness; the zero
// Cookie means "none".
type Cookie [CookieLen]byte

// IsZero reports whether c is the empty cookie.
func (c Cookie) IsZero() bool { return c == Cookie{} }

var (
	labelMAC1   = []byte("mac1----")
	labelCookie = []byte("cookie--")
	// ErrCookie reports a CookieReply that does not open.
	ErrCookie = errors.New("cookie reply does not authenticate")
)

func labelledKey(label []byte, pub PublicKey) [blake2s.Size]byte {
	return blake2s.Sum256(append(append([]byte(nil), label...), pub[:]...))
}

func mac(key []byte, msg []byte) [MACLen]byte {
	h, _ := blake2s.New128(key) // a 16- or 32-byte key never fails
	h.Write(msg)
	var out [MACLen]byte
	h.Sum(out[:0])
	return out
}

// appendMACs appends mac1 (keyed by the responder's key) and mac2 (keyed
// by cookie, zero without one) to a complete Noise message 1.
func appendMACs(msg []byte, responder PublicKey, cookie Cookie) []byte {
	k1 := labelledKey(labelMAC1, responder)
	m1 := mac(k1[:], msg)
	msg = append(msg, m1[:]...)
	if cookie.IsZero() {
		return append(msg, make([]byte, MACLen)...)
	}
	m2 := mac(cookie[:], msg)
	return append(msg, m2[:]...)
}

// MAC1 returns the mac1 field of a message 1 of the right length (the
// associated data of the CookieReply that answers it).
func MAC1(msg []byte) [MACLen]byte {
	var m [MACLen]byte
	if len(msg) == InitLen {
		copy(m[:], msg[InitLen-2*MACLen:])
	}
	return m
}

// MACChecker verifies the MACs of message 1 for one responder key. It is
// safe for concurrent use.
type MACChecker struct {
	mac1Key   [blake2s.Size]byte
	cookieKey [blake2s.Size]byte

	mu      sync.Mutex // guards the secrets and their rotation time
	secret  [32]byte
	prev    [32]byte
	rotated time.Time
}

// NewMACChecker prepares the checks for the responder whose private key is
// static.
func NewMACChecker(static PrivateKey) *MACChecker {
	pub := static.Public()
	return &MACChecker{mac1Key: labelledKey(labelMAC1, pub), cookieKey: labelledKey(labelCookie, pub)}
}

// CheckMAC1 reports whether msg is a message 1 of the right length whose
// mac1 is valid: the cheap test every message passes before any budget or
// Diffie-Hellman work is spent on it.
func (c *MACChecker) CheckMAC1(msg []byte) bool {
	if len(msg) != InitLen {
		return false
	}
	want := mac(c.mac1Key[:], msg[:InitLen-2*MACLen])
	return hmac.Equal(want[:], msg[InitLen-2*MACLen:InitLen-MACLen])
}

// CheckMAC2 reports whether msg's mac2 was made with a cookie issued to
// from (in this rotation period or the previous one).
func (c *MACChecker) CheckMAC2(msg []byte, from netip.AddrPort, now time.Time) bool {
	if len(msg) != InitLen {
		return false
	}
	for _, ck := range c.cookies(from, now) {
		want := mac(ck[:], msg[:InitLen-MACLen])
		if hmac.Equal(want[:], msg[InitLen-MACLen:]) {
			return true
		}
	}
	return false
}

// ValidCookie reports whether ck (echoed in a decrypted message 1) is a
// cookie issued to from in this rotation period or the previous one.
func (c *MACChecker) ValidCookie(ck Cookie, from netip.AddrPort, now time.Time) bool {
	if ck.IsZero() {
		return false
	}
	for _, want := range c.cookies(from, now) {
		if hmac.Equal(want[:], ck[:]) {
			return true
		}
	}
	return false
}

// cookies returns the current and the previous cookie for from.
func (c *MACChecker) cookies(from netip.AddrPort, now time.Time) [2]Cookie {
	c.mu.Lock()
	if c.rotated.IsZero() || now.Sub(c.rotated) >= cookieRotation {
		c.prev = c.secret
		if c.rotated.IsZero() || now.Sub(c.rotated) >= 2*cookieRotation {
			rand.Read(c.prev[:]) // both periods expired: no old cookie survives
		}
		rand.Read(c.secret[:])
		c.rotated = now
	}
	cur, prev := c.secret, c.prev
	c.mu.Unlock()
	addr, _ := from.MarshalBinary()
	return [2]Cookie{Cookie(mac(cur[:], addr)), Cookie(mac(prev[:], addr))}
}

// CookieReply builds the answer to message 1 msg received from from: the
// current cookie for from, sealed with XChaCha20-Poly1305 under a key only
// holders of the responder's public key can derive, with msg's mac1 as
// associated data so it answers exactly that message.
func (c *MACChecker) CookieReply(msg []byte, from netip.AddrPort, reason protocol.CookieReason, now time.Time) []byte {
	h, _ := protocol.ParseHandshakeHeader(msg)
	ck := c.cookies(from, now)[0]
	var nonce [chacha20poly1305.NonceSizeX]byte
	rand.Read(nonce[:])
	b := protocol.AppendCookieHeader(make([]byte, 0, protocol.CookieReplyLen),
		protocol.CookieHeader{Reason: reason, Receiver: h.Sender})
	b = append(b, nonce[:]...)
	aead, _ := chacha20poly1305.NewX(c.cookieKey[:])
	m1 := MAC1(msg)
	return aead.Seal(b, nonce[:], ck[:], m1[:])
}

// OpenCookieReply returns the cookie in reply, which must answer the
// message 1 whose mac1 is mac1 and come from the responder whose key is
// responder.
func OpenCookieReply(reply []byte, responder PublicKey, mac1 [MACLen]byte) (Cookie, error) {
	if len(reply) != protocol.CookieReplyLen {
		return Cookie{}, protocol.ErrShort
	}
	k := labelledKey(labelCookie, responder)
	aead, _ := chacha20poly1305.NewX(k[:])
	nonce := reply[protocol.CookieHeaderLen : protocol.CookieHeaderLen+chacha20poly1305.NonceSizeX]
	p, err := aead.Open(nil, nonce, reply[protocol.CookieHeaderLen+chacha20poly1305.NonceSizeX:], mac1[:])
	if err != nil || len(p) != CookieLen {
		return Cookie{}, ErrCookie
	}
	return Cookie(p), nil
}

// WithMAC2 returns a copy of msg, a message 1, with its mac2 made with
// cookie instead (nil if msg is no message 1): the same initiation
// (ephemeral key, encrypted identity and timestamp, mac1), now proving
// the sender's address. An initiator answered with a cookie only because
// the responder was under load sends this instead of a new initiation: a
// new one costs two scalar multiplications (a fresh ephemeral key and
// es), this one a MAC. The cookie encrypted inside stays what it was, so
// it is no use when the responder wants the cookie echoed there (a stale
// timestamp, a full set of pending sessions): those need a new
// initiation carrying it.
func WithMAC2(msg []byte, cookie Cookie) []byte {
	if len(msg) != InitLen {
		return nil
	}
	out := append(make([]byte, 0, InitLen), msg[:InitLen-MACLen]...)
	if cookie.IsZero() {
		return append(out, make([]byte, MACLen)...)
	}
	m2 := mac(cookie[:], out)
	return append(out, m2[:]...)
}
