package secure

import "crypto/ecdh"

// Keypair is a private key made ready for X25519, its public key computed
// once. Each Diffie-Hellman operation through it costs one scalar
// multiplication: curve25519.X25519 on a raw private key costs two, since
// it builds a crypto/ecdh key, which derives the public key first. The
// relay keeps one Keypair for its static key, so a handshake costs it five
// multiplications (es, ss, a fresh ephemeral, ee, se) instead of ten.
type Keypair struct {
	priv *ecdh.PrivateKey
	pub  PublicKey
}

// NewKeypair prepares k (one scalar multiplication, for its public key).
func NewKeypair(k PrivateKey) *Keypair {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		// Only a key of the wrong length fails; k is 32 bytes.
		panic("x25519 private key: " + err.Error())
	}
	kp := &Keypair{priv: priv}
	copy(kp.pub[:], priv.PublicKey().Bytes())
	return kp
}

// Public returns the public key.
func (k *Keypair) Public() PublicKey { return k.pub }

// dh is X25519 with peer's public key; a low-order peer point (an
// all-zero result) yields an error, which fails the handshake instead of
// producing a predictable key.
func (k *Keypair) dh(peer []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, errDecrypt
	}
	out, err := k.priv.ECDH(pub)
	if err != nil {
		return nil, errDecrypt
	}
	return out, nil
}
