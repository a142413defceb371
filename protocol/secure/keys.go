package secure

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of an X25519 private or public key (RFC 7748 §5).
const KeySize = 32

// PrivateKey is a static X25519 private key. Its text form is standard
// base64, as WireGuard prints keys, so operators can move keys between
// files and YAML without a second format.
type PrivateKey [KeySize]byte

// PublicKey is a static X25519 public key in the same text form.
type PublicKey [KeySize]byte

// ErrKeyLength reports a key whose decoded length is not 32 bytes.
var ErrKeyLength = errors.New("key must be 32 bytes (44 base64 characters)")

// GeneratePrivateKey returns a new clamped X25519 private key.
func GeneratePrivateKey() (PrivateKey, error) {
	var k PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("generate key: %w", err)
	}
	k.clamp()
	return k, nil
}

// clamp applies the X25519 scalar clamping of RFC 7748 §5 so the stored
// key is the one actually used.
func (k *PrivateKey) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// Public derives the public key (one scalar multiplication).
func (k PrivateKey) Public() PublicKey {
	_, pub := prepare(k)
	return pub
}

// String returns the base64 form.
func (k PrivateKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String returns the base64 form.
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether the key is unset.
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// ParsePrivateKey decodes a base64 private key. Surrounding white space is
// ignored so a key file with a trailing newline works.
func ParsePrivateKey(s string) (PrivateKey, error) {
	var k PrivateKey
	if err := decodeKey(s, k[:]); err != nil {
		return k, err
	}
	k.clamp()
	return k, nil
}

// ParsePublicKey decodes a base64 public key.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	err := decodeKey(s, k[:])
	if err == nil && k.IsZero() {
		err = errors.New("key is all zeros")
	}
	return k, err
}

func decodeKey(s string, dst []byte) error {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("key is not base64: %w", err)
	}
	if len(b) != KeySize {
		return fmt.Errorf("%w, got %d bytes", ErrKeyLength, len(b))
	}
	copy(dst, b)
	return nil
}
