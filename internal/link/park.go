package link

import (
	"cmp"
	"encoding/binary"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/internal/splice"
	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/kcp-go/v5"
	"github.com/xtaci/smux"
)

// Parking: the layout of a UDP agent-relay link whose ends both said
// protocol.FlagParkable in the handshake. A relay holds thousands of links
// that carry nothing for hours; what made an idle one expensive was smux
// (a session is a 1,024-slot write ring, a 1,024-slot accept queue and
// three goroutines, about 80 KB) and the KCP state under it, all held
// whether or not a stream was open. So the link runs two KCP conversations
// on its PacketConn:
//
//   - the control channel: a conversation of its own, with small windows,
//     carrying the control messages as a byte stream (no smux);
//   - the data conversation: KCP and smux for tunneled streams, created by
//     the first stream, by whichever end opens it (the other end creates
//     its own when the first datagram of the conversation arrives), and
//     dropped again once both ends agree it has been idle.
//
// Dropping it is the agent's question and the relay's answer, as sealed
// datagrams beside KCP (DataPark, DataParkAck; asked again until answered):
// after parkAfter without a stream or a segment in flight the agent asks
// to park epoch e, and the relay parks when it has no stream and nothing
// in flight either (else it says no and the agent asks again later). Each
// epoch has its own conversation id (dataConv), so a late datagram of a
// parked epoch is dropped, never taken for the start of the next one.
// While its question is unanswered the agent opens no stream; the relay
// may open one at once after it parked, in the next epoch, and its first
// datagram counts as the answer if that comes later. A new data
// conversation has the full windows from its first segment (congestion
// control is off in every preset but normal), so a link that becomes busy
// has its speed back within the round trip that carries smux's SYN.
//
// The relay keeps no timer for this: only the asking end has one, armed
// while a data conversation exists. An idle link has the control
// conversation's frozen sequence numbers (freeze.go), and its reader's
// goroutine at each end.

// parkAfter is how long a data conversation must be idle before the
// agent asks to park it: long enough that a page load's connections or a
// polling client reuse it, short enough that a fleet of idle routers
// costs the relay little. Tuning.ParkAfter replaces it (tests).
const parkAfter = 10 * time.Second

// ctlWindow is the control conversation's window in segments: control
// messages are small, and a Register of many exposures fits.
const ctlWindow = 32

type parkHandler func(kind protocol.DataKind, p []byte)

// dataEnd is one epoch's data conversation.
type dataEnd struct {
	arq *arqConn
	mux *smux.Session
}

func (d *dataEnd) close() {
	if d != nil {
		d.mux.Close() // closes the arqConn too
	}
}

type parker struct {
	// arrivals serves every epoch's smux session: stream IDs restart with
	// each, but the streams of one epoch have all ended before the next.
	arrivals *splice.Arrivals

	pc     *PacketConn
	t      Tuning
	server bool          // smux role of this end
	asks   bool          // this end asks to park (the agent's)
	after  time.Duration // parkAfter, or the tuning's
	base   uint32        // the agent's session index: conversation ids derive from it
	ctl    *arqConn
	die    chan struct{} // closed by close

	mu         sync.Mutex
	epoch      uint32
	lastParked uint32 // the relay re-answers a request for it (its answer was lost)
	parked     bool   // lastParked is set
	data       *dataEnd
	cur        atomic.Pointer[arqConn] // data's arqConn, for route without mu
	up         chan struct{}           // closed while data is set, for AcceptStream
	opening    int                     // OpenStreams between taking data and smux's answer
	asking     bool                    // a request for epoch is unanswered
	answered   chan struct{}           // closed when it is answered or given up
	tries      int
	timer      *time.Timer // the asking end's: idle check, then retries
	closed     bool

	// used by the drain goroutine only (route): conversations that took
	// datagrams of the current batch without sending their ACKs yet
	dirtyCtl  bool
	dirtyData *arqConn

	parks, wakes, stale atomic.Uint64
	onParked            atomic.Pointer[func()] // Link.OnPark
}

func ctlConv(base uint32) uint32 { return ^base }

func dataConv(base, epoch uint32) uint32 { return base + epoch }

// next returns the epoch after e, skipping the one whose conversation id
// would be the control channel's.
func (p *parker) next(e uint32) uint32 {
	e++
	if dataConv(p.base, e) == ctlConv(p.base) {
		e++
	}
	return e
}

func newParker(pc *PacketConn, base uint32, t Tuning, server bool) *parker {
	p := &parker{pc: pc, t: t, server: server, asks: !server, base: base, after: cmp.Or(t.ParkAfter, parkAfter),
		die: make(chan struct{}), up: make(chan struct{}), arrivals: splice.NewArrivals()}
	if dataConv(base, 0) == ctlConv(base) {
		p.epoch = p.next(0)
	}
	ct := t
	ct.SendWindow, ct.RecvWindow = ctlWindow, ctlWindow
	p.ctl = newARQ(pc, ctlConv(base), ct)
	p.ctl.freezes = true // freeze.go
	p.ctl.mu.Lock()
	p.ctl.freezeLocked()
	p.ctl.mu.Unlock()
	h := parkHandler(p.onPark)
	pc.onPark.Store(&h)
	resend := p.resendNow
	pc.resendInFlight.Store(&resend)
	pc.setSink(p.route)
	return p
}

// resendNow retransmits at once what both conversations have in flight:
// the peer moved to a new address, and what went to the old one is lost,
// or it was heard again after a silence (a NAT that forgot the agent's
// mapping and gave the new one the same port). Without it the data
// waited out the timeouts KCP had backed off to while the path was dead:
// a stream opened meanwhile came through up to seconds after the agent's
// next heartbeat had made the path work again.
func (p *parker) resendNow() {
	p.ctl.resendNow()
	if c := p.cur.Load(); c != nil {
		c.resendNow()
	}
}

// route hands one KCP datagram to its conversation (PacketConn's sink).
// A conversation's ACKs leave when the batch's last datagram was input,
// whichever conversation that was.
func (p *parker) route(b []byte, last bool) {
	var c *arqConn
	if b != nil && len(b) >= kcp.IKCP_OVERHEAD {
		if conv := binary.LittleEndian.Uint32(b); conv == p.ctl.conv {
			c = p.ctl
		} else if c = p.dataFor(conv); c == nil {
			p.stale.Add(1)
		}
	}
	if c != nil {
		if !last && c != p.ctl && p.dirtyData != nil && p.dirtyData != c {
			p.dirtyData.input(nil, true) // a new epoch's first datagram ends the old one's batch
			p.dirtyData = nil
		}
		c.input(b, last)
		if !last {
			if c == p.ctl {
				p.dirtyCtl = true
			} else {
				p.dirtyData = c
			}
			return
		}
	}
	if !last && b != nil {
		return
	}
	if p.dirtyCtl && c != p.ctl {
		p.ctl.input(nil, true)
	}
	if p.dirtyData != nil && p.dirtyData != c {
		p.dirtyData.input(nil, true)
	}
	p.dirtyCtl, p.dirtyData = false, nil
}

// dataFor returns the data conversation conv belongs to, starting it
// when conv is the current epoch's first datagram, or nil (stale).
func (p *parker) dataFor(conv uint32) *arqConn {
	if c := p.cur.Load(); c != nil && c.conv == conv {
		return c // the common case: a datagram of the live epoch (if it was just parked, the closed conn drops it)
	}
	p.mu.Lock()
	if p.data != nil && p.data.arq.conv == conv {
		c := p.data.arq
		p.mu.Unlock()
		return c
	}
	var old *dataEnd
	switch {
	case p.closed:
		p.mu.Unlock()
		return nil
	case p.data == nil && conv == dataConv(p.base, p.epoch):
	case p.data != nil && p.asking && conv == dataConv(p.base, p.next(p.epoch)):
		// The relay parked and opened the next epoch's first stream
		// before its answer arrived: this datagram is the answer.
		old = p.resolveLocked(true)
	default:
		p.mu.Unlock()
		return nil
	}
	d := p.startLocked()
	p.mu.Unlock()
	old.close()
	if d == nil {
		return nil
	}
	return d.arq
}

// startLocked creates the current epoch's data conversation.
func (p *parker) startLocked() *dataEnd {
	arq := newARQ(p.pc, dataConv(p.base, p.epoch), p.t)
	mux, err := newMux(arq, p.arrivals, p.t, p.server)
	if err != nil { // the config was verified when the link started
		arq.Close()
		return nil
	}
	p.data = &dataEnd{arq: arq, mux: mux}
	p.cur.Store(arq)
	close(p.up)
	p.wakes.Add(1)
	if p.asks {
		p.armLocked(p.after)
	}
	return p.data
}

// parkLocked ends the current epoch; the caller closes what it returns
// once mu is released.
func (p *parker) parkLocked() *dataEnd {
	d := p.data
	if d != nil {
		p.data = nil
		p.cur.Store(nil)
		p.up = make(chan struct{})
	}
	p.lastParked, p.parked = p.epoch, true
	p.epoch = p.next(p.epoch)
	p.parks.Add(1)
	if f := p.onParked.Load(); f != nil {
		(*f)()
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	return d
}

// resolveLocked ends the asking end's request: parked (ok), or not.
func (p *parker) resolveLocked(ok bool) *dataEnd {
	p.asking = false
	close(p.answered)
	if ok {
		return p.parkLocked()
	}
	p.armLocked(p.after)
	return nil
}

// idleLocked reports whether the data conversation may be parked, and
// otherwise how long to wait before asking again: no stream, none being
// opened, nothing in flight, and (for the asking end) quiet for parkAfter.
func (p *parker) idleLocked() (bool, time.Duration) {
	d := p.data
	if d == nil {
		return true, 0
	}
	if p.opening > 0 || d.mux.NumStreams() > 0 {
		return false, p.after
	}
	quiet, since := d.arq.idle()
	if !quiet {
		return false, p.after
	}
	if wait := p.after - time.Since(since); p.asks && wait > 0 {
		return false, wait
	}
	return true, 0
}

func (p *parker) armLocked(d time.Duration) {
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.onTimer)
	} else {
		p.timer.Reset(d)
	}
}

// onTimer is the asking end's timer: ask to park once the data
// conversation is idle, and ask again, backing off, while no answer
// comes. It never gives up: the relay may have parked on a request whose
// answer was lost, and a stream opened in the old epoch would never
// arrive. A link whose answers stop coming is dead, and the owner's
// heartbeat closes it.
func (p *parker) onTimer() {
	p.mu.Lock()
	if p.closed || p.data == nil {
		p.mu.Unlock()
		return
	}
	if !p.asking {
		if idle, wait := p.idleLocked(); !idle {
			p.armLocked(wait)
			p.mu.Unlock()
			return
		}
		p.asking, p.tries, p.answered = true, 0, make(chan struct{})
	}
	p.tries++
	p.armLocked(min(2*time.Second, max(200*time.Millisecond, 3*p.ctl.srtt())<<min(p.tries-1, 4)))
	epoch := p.epoch
	p.mu.Unlock()
	p.send(protocol.DataPark, epoch, false)
}

func (p *parker) send(kind protocol.DataKind, epoch uint32, ok bool) {
	var b [protocol.ParkLen]byte
	p.pc.sealSend(kind, protocol.AppendPark(b[:0], epoch, ok), *p.pc.peer.Load(), p.pc.send)
}

// onPark takes a DataPark (the relay's end) or a DataParkAck (the agent's).
func (p *parker) onPark(kind protocol.DataKind, b []byte) {
	epoch, ok, err := protocol.ParsePark(b)
	if err != nil || (kind == protocol.DataPark) != p.server {
		p.stale.Add(1)
		return
	}
	var d *dataEnd
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		return
	case kind == protocol.DataParkAck:
		if p.asking && epoch == p.epoch {
			d = p.resolveLocked(ok)
		}
		p.mu.Unlock()
		d.close()
		return
	case p.parked && epoch == p.lastParked:
		ok = true // our answer was lost: say it again
	case epoch == p.epoch:
		if ok, _ = p.idleLocked(); ok {
			d = p.parkLocked()
		}
	default:
		p.mu.Unlock()
		p.stale.Add(1)
		return
	}
	p.mu.Unlock()
	d.close()
	p.send(protocol.DataParkAck, epoch, ok)
}

// openStream opens a stream on the data conversation, starting it if
// the link is parked; it waits while the agent's park request is out.
func (p *parker) openStream() (*smux.Stream, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, io.ErrClosedPipe
		}
		if p.asking {
			ch := p.answered
			p.mu.Unlock()
			select {
			case <-ch:
			case <-p.die:
			}
			continue
		}
		d := p.data
		if d == nil {
			if d = p.startLocked(); d == nil {
				p.mu.Unlock()
				return nil, io.ErrClosedPipe
			}
		}
		p.opening++
		p.mu.Unlock()
		st, err := d.mux.OpenStream()
		p.mu.Lock()
		p.opening--
		p.mu.Unlock()
		return st, err
	}
}

// acceptStream returns the next stream the peer opens, in whichever
// epoch: a parked conversation's smux ends its AcceptStream, and the
// wait goes on on the next one.
func (p *parker) acceptStream() (*smux.Stream, error) {
	for {
		p.mu.Lock()
		d, up, closed := p.data, p.up, p.closed
		p.mu.Unlock()
		if closed {
			return nil, io.ErrClosedPipe
		}
		if d == nil {
			select {
			case <-up:
			case <-p.die:
			}
			continue
		}
		st, err := d.mux.AcceptStream()
		if err == nil {
			return st, nil
		}
		p.mu.Lock()
		current := p.data == d
		p.mu.Unlock()
		if current { // not parked: the conversation failed
			return nil, err
		}
	}
}

// numStreams counts the data conversation's streams.
func (p *parker) numStreams() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.data == nil {
		return 0
	}
	return p.data.mux.NumStreams()
}

func (p *parker) isParked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.data == nil
}

func (p *parker) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *parker) srtt() time.Duration {
	p.mu.Lock()
	d := p.data
	p.mu.Unlock()
	if d != nil {
		if rtt := d.arq.srtt(); rtt > 0 {
			return rtt
		}
	}
	return p.ctl.srtt()
}

func (p *parker) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	d := p.data
	p.data = nil
	p.cur.Store(nil)
	if p.timer != nil {
		p.timer.Stop()
	}
	close(p.die)
	p.mu.Unlock()
	d.close()
	p.ctl.Close()
	return nil
}
