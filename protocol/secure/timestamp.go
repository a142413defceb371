package secure

import (
	"bytes"
	"encoding/binary"
	"sync"
	"time"
)

// tai64Base is 2^62 + 10, the TAI64 label of 1970-01-01 00:00:10 TAI
// (cr.yp.to/libtai/tai64.html); WireGuard's handshake timestamps use it too.
const tai64Base = 0x400000000000000a

// Timestamp encodes t as TAI64N: 8 bytes of seconds, 4 of nanoseconds, big
// endian, so byte order equals time order.
func Timestamp(t time.Time) [TimestampLen]byte {
	var ts [TimestampLen]byte
	binary.BigEndian.PutUint64(ts[:8], tai64Base+uint64(t.Unix()))
	binary.BigEndian.PutUint32(ts[8:], uint32(t.Nanosecond()))
	return ts
}

// Replay remembers, per initiator key, the newest handshake timestamp
// accepted, and refuses any message 1 that is not newer. It bounds memory by
// the number of distinct keys the caller lets through (the relay only asks
// about keys it lists). The zero value is ready; mu guards last.
type Replay struct {
	mu   sync.Mutex
	last map[PublicKey][TimestampLen]byte
}

// Accept records ts for key and reports whether it is newer than any
// timestamp seen before for that key.
func (r *Replay) Accept(key PublicKey, ts [TimestampLen]byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = make(map[PublicKey][TimestampLen]byte)
	}
	if prev, ok := r.last[key]; ok && bytes.Compare(ts[:], prev[:]) <= 0 {
		return false
	}
	r.last[key] = ts
	return true
}

// Forget drops the memory of key (its agent was removed from the config).
func (r *Replay) Forget(key PublicKey) {
	r.mu.Lock()
	delete(r.last, key)
	r.mu.Unlock()
}
