// Package sm4 stands in for github.com/tjfoc/gmsm/sm4 in pinhole builds.
//
// kcp-go offers SM4 as one of its optional packet ciphers and imports
// gmsm/sm4 for it; that package imports crypto/x509, which links ECDSA,
// RSA, ASN.1, math/big and their FIPS self-tests into every binary (about
// 300 KB on mipsle). pinhole never uses kcp-go's ciphers: it seals every
// packet itself with ChaCha20-Poly1305 (package protocol/secure). So the
// go.mod replace points gmsm here, and SM4 is refused with a clear error
// instead of being carried around unused.
package sm4

import (
	"crypto/cipher"
	"errors"
)

// ErrNotBuilt is returned for any attempt to use SM4.
var ErrNotBuilt = errors.New("sm4: not built into pinhole (packets are sealed with ChaCha20-Poly1305)")

// NewCipher always fails: see the package doc.
func NewCipher(key []byte) (cipher.Block, error) { return nil, ErrNotBuilt }
