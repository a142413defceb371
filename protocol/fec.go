package protocol

import (
	"encoding/binary"
	"errors"
)

// Forward error correction on a UDP link (DataParity, DataLossReport).
//
// A group is up to MaxParityData KCP datagrams of one session, named by
// the counters they were sealed with (the AEAD nonce, clear in every Data
// header): a base counter and, for each datagram, its distance from the
// base, strictly increasing, at most 255. Each datagram is a shard of the
// Reed-Solomon code in the form [2-byte length][packet][zeros] padded to
// the parity shard's length, so datagrams of different sizes share one
// code and a recovered one comes back with its own length.

// Limits of a parity group.
const (
	MaxParityData   = 32 // data datagrams in one group
	MaxParityShards = 16 // parity datagrams for one group
	// ParityHeaderLen is the fixed part of a parity payload: base counter
	// (8), data count, parity count, this shard's index, reserved.
	ParityHeaderLen = 12
)

// Parity is one parity datagram's payload.
type Parity struct {
	Base    uint64  // counter of the group's first data datagram
	Offsets []uint8 // each data datagram's counter minus Base; Offsets[0] = 0
	Shards  int     // parity datagrams in the group
	Index   int     // this one's position among them
	Shard   []byte  // the parity bytes (aliases the parsed payload)
}

// ErrParity reports a malformed parity payload.
var ErrParity = errors.New("malformed parity datagram")

// AppendParityHeader appends the header of a parity payload: p without
// its shard, which the caller appends (it is computed in place).
func AppendParityHeader(b []byte, p Parity) []byte {
	b = binary.BigEndian.AppendUint64(b, p.Base)
	b = append(b, byte(len(p.Offsets)), byte(p.Shards), byte(p.Index), 0)
	return append(b, p.Offsets...)
}

// ParseParity decodes a parity payload. The shard must be long enough to
// hold a length prefix; offsets must start at 0 and increase.
func ParseParity(b []byte) (Parity, error) {
	if len(b) < ParityHeaderLen {
		return Parity{}, ErrParity
	}
	k, m, idx := int(b[8]), int(b[9]), int(b[10])
	if k < 1 || k > MaxParityData || m < 1 || m > MaxParityShards || idx >= m || len(b) < ParityHeaderLen+k+3 {
		return Parity{}, ErrParity
	}
	offs := b[ParityHeaderLen : ParityHeaderLen+k]
	if offs[0] != 0 {
		return Parity{}, ErrParity
	}
	for i := 1; i < k; i++ {
		if offs[i] <= offs[i-1] {
			return Parity{}, ErrParity
		}
	}
	return Parity{Base: binary.BigEndian.Uint64(b), Offsets: offs, Shards: m, Index: idx,
		Shard: b[ParityHeaderLen+k:]}, nil
}

// LossReportLen is the size of a loss report's payload.
const LossReportLen = 8

// AppendLossReport appends a report: of the expected datagrams the peer
// sealed since the last report (counter distance), received arrived.
func AppendLossReport(b []byte, expected, received uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, expected)
	return binary.BigEndian.AppendUint32(b, received)
}

// ParseLossReport decodes a report; received may not exceed expected.
func ParseLossReport(b []byte) (expected, received uint32, err error) {
	if len(b) != LossReportLen {
		return 0, 0, ErrShort
	}
	expected, received = binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	if received > expected {
		return 0, 0, ErrParity
	}
	return expected, received, nil
}
