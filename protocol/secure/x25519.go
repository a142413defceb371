package secure

import (
	"encoding/binary"
	"math/bits"
)

// x25519 is the X25519 function of RFC 7748 §5, written here so that the
// router builds need not link crypto/ecdh: that package's FIPS self-test
// pulls in P-256 and its 88 KB precomputed table, about 190 KB of a mipsle
// binary that has a hard flash budget (build/size.sh). x25519_own.go uses
// it on the architectures where crypto/ecdh has no assembly anyway;
// x25519_ecdh.go keeps crypto/ecdh on amd64 and arm64. This file builds
// everywhere so that the tests on any machine check it against crypto/ecdh.
//
// Constant time: the loop count and every memory index depend only on the
// bit position, never on the scalar; the ladder's swap is a mask; the
// inversion's exponent is the public p-2. Field elements are five 51-bit
// limbs (value = l0 + l1·2^51 + l2·2^102 + l3·2^153 + l4·2^204); products
// are formed with bits.Mul64 in 128 bits, and 2^255 ≡ 19 mod p folds the
// high half back.
//
// out receives the u-coordinate of scalar·point (little-endian). An
// all-zero out means point had small order; the callers refuse it.
func x25519(out, scalar, point *[32]byte) {
	// decodeScalar25519 (§5): clear the three low bits and bit 255, set
	// bit 254. The ladder below starts at bit 254.
	k := *scalar
	k[0] &= 248
	k[31] = k[31]&127 | 64

	var x1, x2, z2, x3, z3 fe
	x1.decode(point) // decodeUCoordinate: bit 255 is dropped
	x2 = fe{1}
	x3 = x1
	z3 = fe{1}
	var a, aa, b, bb, e, c, d, da, cb fe
	swap := uint64(0)
	for t := 254; t >= 0; t-- {
		kt := uint64(k[t>>3]>>(t&7)) & 1
		swap ^= kt
		x2.cswap(&x3, swap)
		z2.cswap(&z3, swap)
		swap = kt

		a.add(&x2, &z2)
		aa.square(&a)
		b.sub(&x2, &z2)
		bb.square(&b)
		e.sub(&aa, &bb)
		c.add(&x3, &z3)
		d.sub(&x3, &z3)
		da.mul(&d, &a)
		cb.mul(&c, &b)
		x3.add(&da, &cb)
		x3.square(&x3)
		z3.sub(&da, &cb)
		z3.square(&z3)
		z3.mul(&z3, &x1)
		x2.mul(&aa, &bb)
		z2.mul121665(&e)
		z2.add(&z2, &aa)
		z2.mul(&z2, &e)
	}
	x2.cswap(&x3, swap)
	z2.cswap(&z3, swap)

	z2.invert(&z2)
	x2.mul(&x2, &z2)
	x2.encode(out)
}

// fe is an element of GF(2^255-19). Every operation leaves each limb below
// 2^51 + 2^18 ("tight"), and every operation accepts tight inputs, so
// products never exceed their 128-bit accumulators.
type fe [5]uint64

const mask51 = 1<<51 - 1

// decode reads 255 bits, little-endian; bit 255 is ignored and values
// from p to 2^255-1 are accepted as they are (RFC 7748 §5: the arithmetic
// reduces them).
func (v *fe) decode(b *[32]byte) {
	v[0] = binary.LittleEndian.Uint64(b[0:]) & mask51        // bits 0..50
	v[1] = binary.LittleEndian.Uint64(b[6:]) >> 3 & mask51   // bits 51..101
	v[2] = binary.LittleEndian.Uint64(b[12:]) >> 6 & mask51  // bits 102..152
	v[3] = binary.LittleEndian.Uint64(b[19:]) >> 1 & mask51  // bits 153..203
	v[4] = binary.LittleEndian.Uint64(b[24:]) >> 12 & mask51 // bits 204..254
}

// encode writes the canonical form (the value reduced below p).
func (v *fe) encode(b *[32]byte) {
	l := *v
	l.carry()
	// Now v < 2^255 + 2^218 < 2p, so v mod p is v or v-p. q = 1 exactly
	// when v >= p, that is when v+19 reaches 2^255: follow the carry of
	// v+19 through the limbs.
	q := (l[0] + 19) >> 51
	q = (l[1] + q) >> 51
	q = (l[2] + q) >> 51
	q = (l[3] + q) >> 51
	q = (l[4] + q) >> 51
	// v - p·q = v + 19q - 2^255·q: add 19q, carry in order, drop bit 255.
	l[0] += 19 * q
	l[1] += l[0] >> 51
	l[0] &= mask51
	l[2] += l[1] >> 51
	l[1] &= mask51
	l[3] += l[2] >> 51
	l[2] &= mask51
	l[4] += l[3] >> 51
	l[3] &= mask51
	l[4] &= mask51
	binary.LittleEndian.PutUint64(b[0:], l[0]|l[1]<<51)
	binary.LittleEndian.PutUint64(b[8:], l[1]>>13|l[2]<<38)
	binary.LittleEndian.PutUint64(b[16:], l[2]>>26|l[3]<<25)
	binary.LittleEndian.PutUint64(b[24:], l[3]>>39|l[4]<<12)
}

// carry brings limbs below 2^64 back to tight: each limb keeps its low 51
// bits and passes the rest up; what leaves the top limb is 2^255·c ≡ 19c.
func (v *fe) carry() {
	c0, c1, c2, c3, c4 := v[0]>>51, v[1]>>51, v[2]>>51, v[3]>>51, v[4]>>51
	v[0] = v[0]&mask51 + 19*c4
	v[1] = v[1]&mask51 + c0
	v[2] = v[2]&mask51 + c1
	v[3] = v[3]&mask51 + c2
	v[4] = v[4]&mask51 + c3
}

func (v *fe) add(a, b *fe) {
	for i := range v {
		v[i] = a[i] + b[i]
	}
	v.carry()
}

// sub adds 2p before subtracting so that no limb goes below zero: the
// limbs of 2p are 2^52-38 and four of 2^52-2, each above a tight limb.
func (v *fe) sub(a, b *fe) {
	v[0] = a[0] + (1<<52 - 38) - b[0]
	v[1] = a[1] + (1<<52 - 2) - b[1]
	v[2] = a[2] + (1<<52 - 2) - b[2]
	v[3] = a[3] + (1<<52 - 2) - b[3]
	v[4] = a[4] + (1<<52 - 2) - b[4]
	v.carry()
}

// cswap exchanges v and w when swap is 1 and leaves them when it is 0,
// with the same instructions either way.
func (v *fe) cswap(w *fe, swap uint64) {
	m := -swap
	for i := range v {
		t := m & (v[i] ^ w[i])
		v[i] ^= t
		w[i] ^= t
	}
}

// u128 accumulates a column of limb products.
type u128 struct{ lo, hi uint64 }

func (r *u128) madd(x, y uint64) {
	hi, lo := bits.Mul64(x, y)
	var c uint64
	r.lo, c = bits.Add64(r.lo, lo, 0)
	r.hi += hi + c
}

// reduce turns five columns (each below 2^110) into a tight element.
// The carries out of the columns are below 2^59, so 19 times the top one
// still fits in 64 bits; a second carry pass makes the limbs tight.
func (v *fe) reduce(r *[5]u128) {
	var c [5]uint64
	for i := range r {
		c[i] = r[i].hi<<13 | r[i].lo>>51
		v[i] = r[i].lo & mask51
	}
	v[0] += 19 * c[4]
	v[1] += c[0]
	v[2] += c[1]
	v[3] += c[2]
	v[4] += c[3]
	v.carry()
}

// mul sets v = a·b. Column k sums a_i·b_j for i+j = k and 19·a_i·b_j for
// i+j = k+5 (2^255 ≡ 19). With tight inputs each product is below
// 2^102.1·19 and each column below 2^109. The loop bounds depend only on
// the column, never on the values.
func (v *fe) mul(a, b *fe) {
	var b19 fe
	for i := range b19 {
		b19[i] = 19 * b[i]
	}
	var r [5]u128
	for k := range r {
		var acc u128
		for i := 0; i <= k; i++ {
			acc.madd(a[i], b[k-i])
		}
		for i := k + 1; i < 5; i++ {
			acc.madd(a[i], b19[k+5-i])
		}
		r[k] = acc
	}
	v.reduce(&r)
}

// square sets v = a² with mul: a squaring of its own (15 products, not
// 25) would make the ladder some 20% faster and cost 1-3 KB of flash on
// the routers, where x25519 with this mul already comes within about 20%
// of crypto/ecdh's portable Go (qemu-mipsel, BenchmarkX25519).
func (v *fe) square(a *fe) { v.mul(a, a) }

// mul121665 sets v = a·121665, the a24 of RFC 7748 §5 for curve25519.
func (v *fe) mul121665(a *fe) {
	var r [5]u128
	for i := range r {
		r[i].madd(a[i], 121665)
	}
	v.reduce(&r)
}

// squareN sets v = a^(2^n).
func (v *fe) squareN(a *fe, n int) {
	v.square(a)
	for i := 1; i < n; i++ {
		v.square(v)
	}
}

// invert sets v = a^(p-2) = a^(2^255-21), which is 1/a for a ≠ 0 (Fermat)
// and 0 for a = 0. The exponent is public, so a fixed chain of 254
// squarings and 11 multiplications is constant time. Each step names the
// exponent it has reached.
func (v *fe) invert(a *fe) {
	var t2, t9, t11, t5, t10, t20, t40, t50, t100, t, x fe
	t2.square(a)          // 2
	t.squareN(&t2, 2)     // 8
	t9.mul(&t, a)         // 9
	t11.mul(&t9, &t2)     // 11
	t.square(&t11)        // 22
	t5.mul(&t, &t9)       // 31 = 2^5-1
	t.squareN(&t5, 5)     // 2^10-2^5
	t10.mul(&t, &t5)      // 2^10-1
	t.squareN(&t10, 10)   // 2^20-2^10
	t20.mul(&t, &t10)     // 2^20-1
	t.squareN(&t20, 20)   // 2^40-2^20
	t40.mul(&t, &t20)     // 2^40-1
	t.squareN(&t40, 10)   // 2^50-2^10
	t50.mul(&t, &t10)     // 2^50-1
	t.squareN(&t50, 50)   // 2^100-2^50
	t100.mul(&t, &t50)    // 2^100-1
	t.squareN(&t100, 100) // 2^200-2^100
	x.mul(&t, &t100)      // 2^200-1
	t.squareN(&x, 50)     // 2^250-2^50
	x.mul(&t, &t50)       // 2^250-1
	t.squareN(&x, 5)      // 2^255-2^5
	v.mul(&t, &t11)       // 2^255-32+11 = 2^255-21
}
