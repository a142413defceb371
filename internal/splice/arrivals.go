package splice

import (
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"
)

// Arrivals counts, per stream, the data smux has received on a link, and
// tells the parked copy of a stream (park.go) when more comes: smux has
// no callback for it, so Arrivals reads the frames on their way in. The
// link's owner puts Wrap between the link and smux; Tunnels.Splice
// watches each stream.
//
// smux frames are an 8-byte header (version, command, length and stream
// id, little-endian) and length bytes of payload, and smux's receive loop
// reads each header and each payload with exactly as many bytes as it
// needs, and stores the frame before it reads again. A frame is counted
// once its last byte is read, before smux stores it, so a copy that has
// handed on as many bytes as Arrivals counted for its stream has emptied
// smux's buffer of it; its watcher is woken when smux asks for the next
// byte, after the frame is stored, so that a woken copy finds the data
// there (waking it earlier made it wait inside smux again: two wake-ups
// per frame of a busy stream).
type Arrivals struct {
	mu      sync.Mutex // guards streams
	streams map[uint32]*tally
}

// tally is one stream's count.
type tally struct {
	received atomic.Int64 // payload bytes of its complete data frames
	wake     Wake         // nil while not watched
}

// Wake is told of a frame for its stream; final says the stream will
// read no more data: a FIN arrived, or the link failed.
type Wake func(final bool)

// NewArrivals returns an empty registry.
func NewArrivals() *Arrivals { return &Arrivals{streams: map[uint32]*tally{}} }

// Watch calls wake after each frame smux reads for stream id, until
// unwatch; wake must not block. received counts the stream's data from
// its first byte, including what arrived before Watch.
func (a *Arrivals) Watch(id uint32, wake Wake) (received *atomic.Int64, unwatch func()) {
	a.mu.Lock()
	t := a.streamLocked(id)
	t.wake = wake
	a.mu.Unlock()
	return &t.received, func() {
		a.mu.Lock()
		delete(a.streams, id)
		a.mu.Unlock()
	}
}

func (a *Arrivals) streamLocked(id uint32) *tally {
	t := a.streams[id]
	if t == nil {
		t = &tally{}
		a.streams[id] = t
	}
	return t
}

// wakeAll wakes every watcher: the link's reader failed, so every stream
// is about to fail with it.
func (a *Arrivals) wakeAll() {
	a.mu.Lock()
	for _, t := range a.streams {
		if t.wake != nil {
			t.wake(true)
		}
	}
	a.mu.Unlock()
}

// frame counts a complete frame and returns the watcher to wake once
// smux has stored it, if any.
func (a *Arrivals) frame(cmd byte, id uint32, length int) Wake {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch cmd {
	case cmdSYN:
		a.streamLocked(id)
	case cmdPSH:
		t := a.streamLocked(id)
		t.received.Add(int64(length))
		return t.wake
	case cmdFIN:
		if t := a.streams[id]; t != nil {
			if t.wake == nil {
				delete(a.streams, id) // never spliced: nothing will unwatch it
			}
			return t.wake
		}
	}
	return nil
}

// Wrap returns c as smux must read it for a to see its frames. Each smux
// session needs its own Wrap (the frame parser's state is per session).
// A c that writes vectors (WriteBuffers, which smux's sender uses when it
// finds it) keeps doing so.
func (a *Arrivals) Wrap(c io.ReadWriteCloser) io.ReadWriteCloser {
	r := &frameReader{ReadWriteCloser: c, a: a}
	if v, ok := c.(vectorWriter); ok {
		return &vectorFrameReader{r, v}
	}
	return r
}

type vectorWriter interface {
	WriteBuffers(v [][]byte) (int, error)
}

type vectorFrameReader struct {
	*frameReader
	vectorWriter
}

// smux's frame layout and the commands Arrivals acts on.
const (
	frameHeaderLen = 8 // version, cmd, length uint16, stream id uint32
	cmdSYN         = 0
	cmdFIN         = 1
	cmdPSH         = 2
)

// frameReader follows smux's frame boundaries in the bytes smux reads.
// Only smux's receive loop calls Read, so its state needs no lock.
type frameReader struct {
	io.ReadWriteCloser
	a *Arrivals

	hdr  [frameHeaderLen]byte
	have int // header bytes seen of the current frame
	left int // payload bytes still to come

	stored Wake // the watcher of the frame the last Read completed
	fin    bool // whether that frame was a FIN
}

func (r *frameReader) Read(p []byte) (int, error) {
	if r.stored != nil { // smux stored that frame before asking for more
		r.stored(r.fin)
		r.stored = nil
	}
	n, err := r.ReadWriteCloser.Read(p)
	if err != nil && n == 0 {
		r.a.wakeAll()
		return n, err
	}
	r.follow(p[:n])
	return n, err
}

// follow advances the parser over b and counts the frames b completes
// (one at most from smux, which reads a header or a payload at a time).
func (r *frameReader) follow(b []byte) {
	for len(b) > 0 {
		if r.have < frameHeaderLen {
			c := copy(r.hdr[r.have:], b)
			r.have += c
			b = b[c:]
			if r.have < frameHeaderLen {
				return
			}
			r.left = int(binary.LittleEndian.Uint16(r.hdr[2:4]))
		} else {
			c := min(r.left, len(b))
			r.left -= c
			b = b[c:]
		}
		if r.left == 0 {
			r.have = 0
			if r.stored != nil { // a reader other than smux's took two frames at once
				r.stored(r.fin)
			}
			r.stored = r.a.frame(r.hdr[1], binary.LittleEndian.Uint32(r.hdr[4:8]), int(binary.LittleEndian.Uint16(r.hdr[2:4])))
			r.fin = r.hdr[1] == cmdFIN
		}
	}
}
