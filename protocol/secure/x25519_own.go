//go:build !amd64 && !arm64

package secure

// Everywhere but amd64 and arm64 crypto/ecdh's X25519 is portable Go like
// x25519.go, and linking it costs a router build about 190 KB (its FIPS
// self-test brings P-256): x25519.go does the work instead.

// prepared is the private key itself; the ladder clamps it on each use.
type prepared struct{ k [KeySize]byte }

var basepoint = [KeySize]byte{9}

func prepare(k PrivateKey) (prepared, PublicKey) {
	var pub PublicKey
	x25519((*[KeySize]byte)(&pub), (*[KeySize]byte)(&k), &basepoint)
	return prepared{k}, pub
}

func (p prepared) dh(peer *[KeySize]byte) ([]byte, error) {
	out := make([]byte, KeySize)
	x25519((*[KeySize]byte)(out), &p.k, peer)
	if isZero(out) {
		return nil, errDecrypt
	}
	return out, nil
}

// isZero reports whether b is all zeros, reading every byte whatever it
// finds (the result is secret until it is known to be zero).
func isZero(b []byte) bool {
	var acc byte
	for _, x := range b {
		acc |= x
	}
	return acc == 0
}
