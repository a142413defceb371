package link

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// recordPlain is the plaintext per sealed record on TCP: large enough to
// amortise the 34 bytes of framing and tag, small enough to keep latency
// and buffers low on a router.
const recordPlain = 16 << 10

// Stream is a net.Conn over TCP whose bytes travel as sealed Data records.
// Write may be called concurrently (records never interleave); Read is for
// one reader, smux's receive loop.
type Stream struct {
	net.Conn
	sess *secure.Session
	r    *bufio.Reader

	rbuf    []byte // record buffer
	pending []byte // opened plaintext not yet returned

	wmu  sync.Mutex
	wbuf []byte

	confirmed atomic.Bool
	onConfirm func()
	lastRecv  atomic.Int64
	onForward atomic.Pointer[ForwardHandler]
	act       activity // records sent, for the owner's heartbeat (activity.go)
}

// NewStream wraps an established TCP connection. br must be the reader the
// handshake used, so no buffered bytes are lost.
func NewStream(c net.Conn, br *bufio.Reader, sess *secure.Session, onConfirm func()) *Stream {
	if br == nil {
		br = bufio.NewReaderSize(c, 32<<10)
	}
	return &Stream{Conn: c, sess: sess, r: br, rbuf: NewRecordBuffer(), onConfirm: onConfirm}
}

// LastReceive returns when the last authenticated record arrived.
func (s *Stream) LastReceive() time.Time { return unixNano(s.lastRecv.Load()) }

// ErrPeerClosed is Read's error once the peer closed the TCP connection.
// It is not io.EOF: smux hands its link's read error to the Read of every
// open stream, where io.EOF would pass for each stream's clean end (a FIN)
// and a download cut by a relay restart would look complete.
var ErrPeerClosed = errors.New("link closed by the peer")

// Read returns opened plaintext; a record that fails authentication ends
// the stream with the error (TCP cannot lose or reorder, so it is an attack
// or a bug, not noise).
func (s *Stream) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		rec, err := ReadRecord(s.r, s.rbuf)
		if err == io.EOF {
			return 0, ErrPeerClosed
		}
		if err != nil {
			return 0, err
		}
		// Decrypt in place: the plaintext lands where the ciphertext began.
		out, err := s.sess.Open(rec[protocol.DataHeaderLen:protocol.DataHeaderLen], rec)
		if err != nil {
			return 0, err
		}
		s.lastRecv.Store(nowNano())
		switch protocol.DataKind(rec[1]) {
		case protocol.DataKCP:
		case protocol.DataForward:
			s.forwarded(out)
			continue
		default:
			continue // path probes have no meaning on TCP, which does not roam
		}
		if !s.confirmed.Load() && s.confirmed.CompareAndSwap(false, true) && s.onConfirm != nil {
			s.onConfirm()
		}
		s.pending = out
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// Write seals p in records of at most recordPlain bytes.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > recordPlain {
			chunk = chunk[:recordPlain]
		}
		if err := s.writeRecordLocked(protocol.DataKCP, chunk); err != nil {
			return written, err
		}
		s.act.wrote()
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

// writeRecordLocked seals p as one record of the given kind, with its
// 2-byte length, in one Write; s.wmu is held.
func (s *Stream) writeRecordLocked(kind protocol.DataKind, p []byte) error {
	b := append(s.wbuf[:0], 0, 0)
	b, err := s.sess.SealKind(b, kind, p)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint16(b, uint16(len(b)-2))
	s.wbuf = b
	_, err = s.Conn.Write(b)
	return err
}
