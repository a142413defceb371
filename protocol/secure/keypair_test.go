package secure

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/curve25519"
)

// TestKeypairDHMatchesX25519: the prepared key computes exactly what
// curve25519.X25519 does on the raw keys, and the public key is the one
// PrivateKey.Public derives.
func TestKeypairDHMatchesX25519(t *testing.T) {
	for range 20 {
		a, _ := GeneratePrivateKey()
		b, _ := GeneratePrivateKey()
		ka, bpub := NewKeypair(a), b.Public()
		if ka.Public() != a.Public() {
			t.Fatal("Keypair.Public differs from PrivateKey.Public")
		}
		got, err := ka.dh(bpub[:])
		if err != nil {
			t.Fatal(err)
		}
		want, err := curve25519.X25519(a[:], bpub[:])
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("dh = %x, X25519 = %x (err %v)", got, want, err)
		}
	}
}

// TestKeypairDHRejectsLowOrderPoints: a peer key of small order gives an
// all-zero shared secret, which must fail the handshake, and a key of the
// wrong length is refused.
func TestKeypairDHRejectsLowOrderPoints(t *testing.T) {
	k, _ := GeneratePrivateKey()
	kp := NewKeypair(k)
	one := make([]byte, KeySize)
	one[0] = 1
	for _, p := range [][]byte{make([]byte, KeySize), one, make([]byte, KeySize-1)} {
		if out, err := kp.dh(p); err == nil {
			t.Errorf("dh with %x = %x, want an error", p, out)
		}
	}
}
