package secure

import (
	"crypto/cipher"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"hash"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
)

// protocolName names the Noise protocol (spec §8); it is hashed into the
// initial state, so both ends must use exactly this string.
const protocolName = "Noise_IK_25519_ChaChaPoly_BLAKE2s"

// hashLen is BLAKE2s's output length (spec §12.8).
const hashLen = blake2s.Size

var errDecrypt = errors.New("handshake authentication failed")

// symmetricState is the Noise SymmetricState (spec §5.2) with its embedded
// CipherState: chaining key, handshake hash, and the current key and nonce.
type symmetricState struct {
	ck, h  [hashLen]byte
	k      [chacha20poly1305.KeySize]byte
	hasKey bool
	n      uint64
}

func newHash() hash.Hash {
	h, _ := blake2s.New256(nil) // nil key never fails
	return h
}

// initialize implements InitializeSymmetric and MixHash(prologue).
func (s *symmetricState) initialize(prologue []byte) {
	// The name is longer than hashLen, so h = HASH(name) (spec §5.2).
	s.h = blake2s.Sum256([]byte(protocolName))
	s.ck = s.h
	s.mixHash(prologue)
}

func (s *symmetricState) mixHash(data []byte) {
	d := newHash()
	d.Write(s.h[:])
	d.Write(data)
	d.Sum(s.h[:0])
}

// hkdf is the two-output HKDF of spec §4.3 with HMAC-BLAKE2s.
func hkdf(ck *[hashLen]byte, ikm []byte) (out1, out2 [hashLen]byte) {
	mac := hmac.New(newHash, ck[:])
	mac.Write(ikm)
	var temp [hashLen]byte
	mac.Sum(temp[:0])

	mac = hmac.New(newHash, temp[:])
	mac.Write([]byte{1})
	mac.Sum(out1[:0])

	mac = hmac.New(newHash, temp[:])
	mac.Write(out1[:])
	mac.Write([]byte{2})
	mac.Sum(out2[:0])
	return out1, out2
}

func (s *symmetricState) mixKey(ikm []byte) {
	ck, tk := hkdf(&s.ck, ikm)
	s.ck = ck
	s.k = tk
	s.hasKey = true
	s.n = 0
}

// noiseNonce is the ChaChaPoly nonce of spec §12.3: 32 zero bits then the
// 64-bit counter little endian.
func noiseNonce(n uint64) []byte {
	var nonce [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint64(nonce[4:], n)
	return nonce[:]
}

func (s *symmetricState) aead() cipher.AEAD {
	a, err := chacha20poly1305.New(s.k[:])
	if err != nil {
		panic("chacha20poly1305 with a 32-byte key: " + err.Error())
	}
	return a
}

func (s *symmetricState) encryptAndHash(dst, plaintext []byte) []byte {
	if !s.hasKey {
		s.mixHash(plaintext)
		return append(dst, plaintext...)
	}
	start := len(dst)
	dst = s.aead().Seal(dst, noiseNonce(s.n), plaintext, s.h[:])
	s.n++
	s.mixHash(dst[start:])
	return dst
}

func (s *symmetricState) decryptAndHash(ciphertext []byte) ([]byte, error) {
	if !s.hasKey {
		s.mixHash(ciphertext)
		return append([]byte(nil), ciphertext...), nil
	}
	p, err := s.aead().Open(nil, noiseNonce(s.n), ciphertext, s.h[:])
	if err != nil {
		return nil, errDecrypt
	}
	s.n++
	s.mixHash(ciphertext)
	return p, nil
}

// split implements Split (spec §5.2): the initiator sends with the first key.
func (s *symmetricState) split() (k1, k2 [hashLen]byte) {
	return hkdf(&s.ck, nil)
}
