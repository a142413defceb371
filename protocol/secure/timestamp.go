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

// Replay remembers, per initiator key, the timestamp of the last handshake
// whose session was confirmed (its initiator proved it holds the session
// keys), and reports whether a new message 1 is newer. Recording only
// confirmed sessions matters: a replayed message 1 never confirms, so it
// cannot move the mark; and a mark set by an agent whose clock ran ahead is
// replaced by the agent's next confirmed session, whatever its clock says
// then (that session got in with a cookie, see cookie.go), so a wrong
// clock never locks an agent out. It bounds memory by the number of
// distinct keys the caller records (the relay only records keys it lists).
// The zero value is ready; mu guards last.
type Replay struct {
	mu   sync.Mutex
	last map[PublicKey][TimestampLen]byte
}

// Fresh reports whether ts is newer than the last confirmed timestamp of key.
func (r *Replay) Fresh(key PublicKey, ts [TimestampLen]byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, ok := r.last[key]
	return !ok || bytes.Compare(ts[:], prev[:]) > 0
}

// Confirm records ts as the timestamp of key's newest confirmed session.
func (r *Replay) Confirm(key PublicKey, ts [TimestampLen]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = make(map[PublicKey][TimestampLen]byte)
	}
	r.last[key] = ts
}

// Forget drops the memory of key (its agent was removed from the config).
func (r *Replay) Forget(key PublicKey) {
	r.mu.Lock()
	delete(r.last, key)
	r.mu.Unlock()
}
