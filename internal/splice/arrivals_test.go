package splice

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
)

// frame builds one smux frame.
func frame(cmd byte, sid uint32, payload []byte) []byte {
	b := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
	b[0], b[1] = 2, cmd
	binary.LittleEndian.PutUint16(b[2:], uint16(len(payload)))
	binary.LittleEndian.PutUint32(b[4:], sid)
	return append(b, payload...)
}

// chunked returns its data a few bytes per Read, then err.
type chunked struct {
	data []byte
	step int
	err  error
	io.Writer
	io.Closer
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, c.err
	}
	n := copy(p[:min(len(p), c.step)], c.data)
	c.data = c.data[n:]
	return n, nil
}

// TestArrivalsFollowFrames: whatever sizes the link's Reads return, a
// stream's count is the payload of its complete data frames from its
// first byte (also what arrived before Watch), each frame for a watched
// stream wakes it once, after it is counted, the FIN and a failed Read say
// the stream is done, and an unwatched stream's FIN drops its count.
func TestArrivalsFollowFrames(t *testing.T) {
	var stream []byte
	stream = append(stream, frame(cmdSYN, 9, nil)...)
	stream = append(stream, frame(cmdPSH, 9, []byte("early"))...) // before Watch
	stream = append(stream, frame(cmdPSH, 3, []byte("hello"))...)
	stream = append(stream, frame(4, 5, make([]byte, 8))...) // UPD, another stream
	stream = append(stream, frame(cmdPSH, 3, make([]byte, 300))...)
	stream = append(stream, frame(3, 0, nil)...) // NOP
	stream = append(stream, frame(cmdSYN, 11, nil)...)
	stream = append(stream, frame(cmdFIN, 11, nil)...) // never watched
	stream = append(stream, frame(cmdFIN, 3, nil)...)
	for _, step := range []int{1, 3, 8, 64, 4096} {
		a := NewArrivals()
		var mu sync.Mutex
		wakes, finals := map[uint32]int{}, map[uint32]int{}
		received := map[uint32]*atomic.Int64{}
		watch := func(id uint32) {
			received[id], _ = a.Watch(id, func(final bool) {
				mu.Lock()
				defer mu.Unlock()
				wakes[id]++
				if final {
					finals[id]++
				}
				if id == 3 && received[3].Load() == 0 {
					t.Error("stream 3 woken before its data was counted")
				}
			})
		}
		watch(3)
		watch(7)
		dead := errors.New("link down")
		r := a.Wrap(&chunked{data: append([]byte(nil), stream...), step: step, err: dead})
		// Read as smux does: each header, then each payload, exactly.
		hdr := make([]byte, frameHeaderLen)
		for i := 0; ; i++ {
			if i == 2 {
				watch(9) // spliced after its first data arrived
			}
			if _, err := io.ReadFull(r, hdr); err != nil {
				if !errors.Is(err, dead) {
					t.Fatalf("step %d: %v", step, err)
				}
				break
			}
			if _, err := io.ReadFull(r, make([]byte, binary.LittleEndian.Uint16(hdr[2:]))); err != nil {
				t.Fatalf("step %d: payload: %v", step, err)
			}
		}
		mu.Lock()
		if wakes[3] != 4 || finals[3] != 2 || wakes[7] != 1 || finals[7] != 1 || wakes[9] != 1 {
			t.Errorf("step %d: wakes %v, final %v; want 3:4 7:1 9:1, final 3:2 7:1", step, wakes, finals)
		}
		mu.Unlock()
		if n3, n9 := received[3].Load(), received[9].Load(); n3 != 305 || n9 != 5 {
			t.Errorf("step %d: received 3:%d 9:%d, want 305 and 5", step, n3, n9)
		}
		if _, ok := a.streams[11]; ok {
			t.Errorf("step %d: an unwatched stream's count outlived its FIN", step)
		}
	}
}

// TestArrivalsKeepVectorWrites: smux's sender writes vectors when its conn
// can; Wrap must not hide that.
func TestArrivalsKeepVectorWrites(t *testing.T) {
	if _, ok := NewArrivals().Wrap(&vectorConn{}).(vectorWriter); !ok {
		t.Fatal("the wrapped conn lost WriteBuffers")
	}
	if _, ok := NewArrivals().Wrap(&chunked{}).(vectorWriter); ok {
		t.Fatal("a conn without WriteBuffers gained it")
	}
}

type vectorConn struct{ chunked }

func (vectorConn) WriteBuffers([][]byte) (int, error) { return 0, nil }
