package secure

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"testing"
)

// The tests call x25519 directly, so they check x25519.go on every
// architecture, including amd64 where Keypair uses crypto/ecdh; on the
// router architectures (GOARCH=mipsle go test -c, run under qemu) the
// Keypair tests exercise it too.

var x25519Million = flag.Bool("x25519-million", false, "also run RFC 7748's 1,000,000-iteration X25519 vector (minutes under qemu)")

func hex32(t testing.TB, s string) *[32]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad test hex %q", s)
	}
	return (*[32]byte)(b)
}

func x25519Of(scalar, point *[32]byte) [32]byte {
	var out [32]byte
	x25519(&out, scalar, point)
	return out
}

// ecdhX25519 is the reference: crypto/ecdh on the same inputs. ok is false
// when it refuses the result (all zeros: a low-order point).
func ecdhX25519(t testing.TB, scalar, point []byte) (out []byte, ok bool) {
	t.Helper()
	priv, err := ecdh.X25519().NewPrivateKey(scalar)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ecdh.X25519().NewPublicKey(point)
	if err != nil {
		t.Fatal(err)
	}
	out, err = priv.ECDH(pub)
	return out, err == nil
}

// TestX25519RFC7748Vectors: the two single multiplications of RFC 7748
// §5.2; the second point has bit 255 set, which must be ignored.
func TestX25519RFC7748Vectors(t *testing.T) {
	for _, tc := range []struct{ name, scalar, u, want string }{
		{"vector1",
			"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		{"vector2",
			"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := x25519Of(hex32(t, tc.scalar), hex32(t, tc.u))
			if want := hex32(t, tc.want); got != *want {
				t.Errorf("got %x, want %x", got, want)
			}
		})
	}
}

// TestX25519RFC7748Iterations: RFC 7748 §5.2's iterated vector, k = u = 9
// and then k, u = X25519(k, u), k. The 1,000,000th result runs only with
// -x25519-million.
func TestX25519RFC7748Iterations(t *testing.T) {
	want := map[int]string{
		1:       "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
		1000:    "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51",
		1000000: "7c3911e0ab2586fd864497297e575e6f3bc601c0883c30df5f4dd2d24f665424",
	}
	last := 1000
	if *x25519Million {
		last = 1000000
	}
	k, u := [32]byte{9}, [32]byte{9}
	for i := 1; i <= last; i++ {
		k, u = x25519Of(&k, &u), k
		if w, ok := want[i]; ok {
			if k != *hex32(t, w) {
				t.Fatalf("after %d iterations: got %x, want %s", i, k, w)
			}
		}
	}
	if last < 1000000 {
		t.Log("1,000,000 iterations skipped: pass -x25519-million")
	}
}

// TestX25519RFC7748DiffieHellman: RFC 7748 §6.1, through x25519 and
// through the package API (Keypair, PrivateKey.Public), which is
// crypto/ecdh or x25519.go depending on the architecture.
func TestX25519RFC7748DiffieHellman(t *testing.T) {
	alice := hex32(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	alicePub := hex32(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
	bob := hex32(t, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
	bobPub := hex32(t, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
	shared := hex32(t, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
	nine := [32]byte{9}

	if got := x25519Of(alice, &nine); got != *alicePub {
		t.Errorf("Alice's public key: got %x, want %x", got, alicePub)
	}
	if got := x25519Of(bob, &nine); got != *bobPub {
		t.Errorf("Bob's public key: got %x, want %x", got, bobPub)
	}
	if got := x25519Of(alice, bobPub); got != *shared {
		t.Errorf("Alice's shared secret: got %x, want %x", got, shared)
	}
	if got := x25519Of(bob, alicePub); got != *shared {
		t.Errorf("Bob's shared secret: got %x, want %x", got, shared)
	}

	// The RFC's private keys are not clamped; the package API clamps them
	// as X25519 does, so the results are the same.
	ka, kb := NewKeypair(PrivateKey(*alice)), NewKeypair(PrivateKey(*bob))
	if ka.Public() != PublicKey(*alicePub) || PrivateKey(*alice).Public() != PublicKey(*alicePub) {
		t.Errorf("Keypair/PrivateKey public key: got %x and %x, want %x", ka.Public(), PrivateKey(*alice).Public(), alicePub)
	}
	for name, kp := range map[string]*Keypair{"Alice": ka, "Bob": kb} {
		peer := bobPub
		if name == "Bob" {
			peer = alicePub
		}
		got, err := kp.dh(peer[:])
		if err != nil || !bytes.Equal(got, shared[:]) {
			t.Errorf("%s's Keypair.dh: got %x (err %v), want %x", name, got, err, shared)
		}
	}
}

// TestX25519MatchesECDH: 10,000 random scalars against random 32-byte
// strings as points (bit 255 set half the time, so the masking is
// covered) and against points whose u is at or just past p, which the
// field arithmetic must reduce (RFC 7748 §5: non-canonical values are
// accepted). Under -race 1,000: `make test` also runs FuzzX25519 on
// 100,000 inputs without it.
func TestX25519MatchesECDH(t *testing.T) {
	n := 10000
	if raceDetector {
		n = 1000
	}
	edge := []string{
		"0900000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p-1
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+1
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // 2^255-1
		"f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+9
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"0200000000000000000000000000000000000000000000000000000000000000",
		"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff3f",
	}
	var scalar, point [32]byte
	for i := range n {
		rand.Read(scalar[:])
		if i < len(edge) {
			point = *hex32(t, edge[i])
		} else {
			rand.Read(point[:])
		}
		got := x25519Of(&scalar, &point)
		want, ok := ecdhX25519(t, scalar[:], point[:])
		if !ok {
			want = make([]byte, 32) // crypto/ecdh refuses an all-zero result
		}
		if !bytes.Equal(got[:], want) {
			t.Fatalf("x25519(%x, %x) = %x, crypto/ecdh %x", scalar, point, got, want)
		}
	}
}

// lowOrderPoints are u-coordinates of points of small order (dividing 8)
// on curve25519 or its twist, then some of them again written from p up
// (non-canonical) or with bit 255 set: every scalar maps them to zero.
var lowOrderPoints = []string{
	"0000000000000000000000000000000000000000000000000000000000000000", // 0
	"0100000000000000000000000000000000000000000000000000000000000000", // 1
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p-1
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p, that is 0
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+1, that is 1
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880", // order 8, bit 255
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7", // order 8, bit 255
	"0000000000000000000000000000000000000000000000000000000000000080", // 0, bit 255
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // p-1, bit 255
}

// TestX25519LowOrderPoints: for each low-order point x25519 gives all
// zeros, crypto/ecdh refuses, and Keypair.dh (whichever implementation the
// architecture uses) fails as the handshake expects.
func TestX25519LowOrderPoints(t *testing.T) {
	k, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	kp := NewKeypair(k)
	for _, s := range lowOrderPoints {
		p := hex32(t, s)
		if got := x25519Of((*[32]byte)(&k), p); got != [32]byte{} {
			t.Errorf("x25519 with %s = %x, want all zeros", s, got)
		}
		if out, ok := ecdhX25519(t, k[:], p[:]); ok {
			t.Errorf("crypto/ecdh accepted %s (%x): the list is wrong", s, out)
		}
		if out, err := kp.dh(p[:]); err != errDecrypt {
			t.Errorf("Keypair.dh with %s = %x, %v, want errDecrypt", s, out, err)
		}
	}
}

// FuzzX25519 compares x25519 with crypto/ecdh (an all-zero x25519 result
// where crypto/ecdh refuses). The inputs are cut or zero-padded to 32
// bytes, so that every input the fuzzer makes is a multiplication.
func FuzzX25519(f *testing.F) {
	f.Add(make([]byte, 32), []byte{9, 31: 0})
	f.Add(bytes.Repeat([]byte{0xff}, 32), bytes.Repeat([]byte{0xff}, 32))
	for _, s := range lowOrderPoints {
		f.Add(bytes.Repeat([]byte{0x5a}, 32), hex32(f, s)[:])
	}
	f.Fuzz(func(t *testing.T, s, p []byte) {
		var scalar, point [32]byte
		copy(scalar[:], s)
		copy(point[:], p)
		got := x25519Of(&scalar, &point)
		want, ok := ecdhX25519(t, scalar[:], point[:])
		if !ok {
			want = make([]byte, 32)
		}
		if !bytes.Equal(got[:], want) {
			t.Fatalf("x25519(%x, %x) = %x, crypto/ecdh %x", scalar, point, got, want)
		}
	})
}

// BenchmarkX25519 is one scalar multiplication with a prepared key:
// x25519.go ("own") against crypto/ecdh, on whatever GOARCH runs it.
func BenchmarkX25519(b *testing.B) {
	var scalar, point [32]byte
	rand.Read(scalar[:])
	rand.Read(point[:])
	b.Run("own", func(b *testing.B) {
		var out [32]byte
		for b.Loop() {
			x25519(&out, &scalar, &point)
		}
	})
	b.Run("ecdh", func(b *testing.B) {
		priv, _ := ecdh.X25519().NewPrivateKey(scalar[:])
		pub, _ := ecdh.X25519().NewPublicKey(point[:])
		for b.Loop() {
			if _, err := priv.ECDH(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}
