//go:build amd64 || arm64

package secure

import "crypto/ecdh"

// On amd64 and arm64 crypto/ecdh multiplies with assembly field
// arithmetic, faster than x25519.go, and the relay (amd64) counts
// handshakes per core; its size does not matter there.

// prepared is the private key as crypto/ecdh keeps it, public key included.
type prepared struct{ k *ecdh.PrivateKey }

func prepare(k PrivateKey) (prepared, PublicKey) {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		// Only a key of the wrong length fails; k is 32 bytes.
		panic("x25519 private key: " + err.Error())
	}
	var pub PublicKey
	copy(pub[:], priv.PublicKey().Bytes())
	return prepared{priv}, pub
}

func (p prepared) dh(peer *[KeySize]byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return nil, errDecrypt
	}
	out, err := p.k.ECDH(pub) // fails on an all-zero result
	if err != nil {
		return nil, errDecrypt
	}
	return out, nil
}
