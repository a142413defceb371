package relay

import (
	"math/bits"
	"sync"
)

// Datagram buffers come in power-of-two size classes from 64 B to 64 KiB
// (the largest framed datagram, 2 + protocol.MaxUDPPayload bytes, fits in
// 64 KiB). A buffer holds the smallest class that fits, so a 100-byte
// datagram costs 128 bytes while it waits, not the 64 KiB a per-flow
// maximum-size buffer cost before (5,000 spoofed sources grew the relay
// from 8 MB to 264 MB). The pools are sync.Pools: what a burst leaves
// behind is returned to the runtime after two garbage collections.
const (
	minClassShift = 6  // 64 B: a framed DNS query or a WireGuard keepalive
	maxClassShift = 16 // 64 KiB
)

var classPools [maxClassShift - minClassShift + 1]sync.Pool

// classIndex returns the size class that holds n bytes (n <= 64 KiB).
func classIndex(n int) int {
	shift := bits.Len(uint(n - 1))
	if n <= 1 || shift < minClassShift {
		return 0
	}
	return shift - minClassShift
}

// classSize is the capacity of the buffer getBuf(n) returns: what a
// queued datagram of n bytes really costs.
func classSize(n int) int { return 1 << (classIndex(n) + minClassShift) }

// getBuf returns a buffer of length n from its size class's pool.
func getBuf(n int) *[]byte {
	i := classIndex(n)
	if b, ok := classPools[i].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(i+minClassShift))
	return &b
}

// putBuf returns a buffer from getBuf to its pool.
func putBuf(b *[]byte) {
	classPools[classIndex(cap(*b))].Put(b)
}
