// Package seqdgram makes self-checking test datagrams: a sequence number,
// a body whose length varies with it, and a sha256 prefix of both, so a
// receiver can count losses, spot reordering and detect any corruption
// without keeping what was sent. Used by the loopback tests and the lab's
// probe.
package seqdgram

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strconv"
)

// Make builds datagram seq: 8 decimal digits, 32-731 body bytes, 8 bytes
// of sha256.
func Make(seq int) []byte {
	b := fmt.Appendf(nil, "%08d", seq)
	b = append(b, bytes.Repeat([]byte{byte(seq)}, 32+seq%700)...)
	sum := sha256.Sum256(b)
	return append(b, sum[:8]...)
}

// Parse returns the sequence number of an intact datagram.
func Parse(b []byte) (int, bool) {
	if len(b) < 16 {
		return 0, false
	}
	body, sum := b[:len(b)-8], b[len(b)-8:]
	want := sha256.Sum256(body)
	if !bytes.Equal(sum, want[:8]) {
		return 0, false
	}
	seq, err := strconv.Atoi(string(body[:8]))
	return seq, err == nil
}
