package secure

// Keypair is a private key made ready for X25519, its public key computed
// once. Each Diffie-Hellman operation through it costs one scalar
// multiplication: curve25519.X25519 on a raw private key costs two, since
// it builds a crypto/ecdh key, which derives the public key first. The
// relay keeps one Keypair for its static key, so a handshake costs it five
// multiplications (es, ss, a fresh ephemeral, ee, se) instead of ten.
// What "prepared" holds depends on the architecture (x25519_ecdh.go,
// x25519_own.go).
type Keypair struct {
	priv prepared
	pub  PublicKey
}

// NewKeypair prepares k (one scalar multiplication, for its public key).
func NewKeypair(k PrivateKey) *Keypair {
	kp := &Keypair{}
	kp.priv, kp.pub = prepare(k)
	return kp
}

// Public returns the public key.
func (k *Keypair) Public() PublicKey { return k.pub }

// dh is X25519 with peer's public key; a peer key that is not 32 bytes,
// or a low-order peer point (an all-zero result), yields errDecrypt, which
// fails the handshake instead of producing a predictable key.
func (k *Keypair) dh(peer []byte) ([]byte, error) {
	if len(peer) != KeySize {
		return nil, errDecrypt
	}
	return k.priv.dh((*[KeySize]byte)(peer))
}
