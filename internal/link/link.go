package link

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pinhole/pinhole/internal/splice"
	"github.com/xtaci/kcp-go/v5"
	"github.com/xtaci/smux"
)

// Transport names the path a link runs on.
type Transport string

const (
	UDP Transport = "udp"
	TCP Transport = "tcp"
)

// Link is one authenticated agent-relay (or agent-agent) connection: a
// control channel and the tunneled streams. Owners reach both through its
// methods, whichever layout it runs: smux with the control channel as its
// first stream (TCP, FEC, a peer that cannot park), or the parked layout
// (park.go), where the control channel is a KCP conversation of its own
// and smux exists only while streams do.
type Link struct {
	Transport Transport

	mux  *smux.Session // the smux layout
	park *parker       // the parked layout

	// arrivals sees the frames smux reads, for the tunneled streams'
	// idle copies (internal/splice, park.go).
	arrivals *splice.Arrivals

	lastRecv   func() time.Time
	act        *activity
	forward    func([]byte) error
	setForward func(ForwardHandler)
	srtt       func() time.Duration // smoothed RTT, UDP only
	arq        *arqConn             // UDP without FEC
	pc         *PacketConn          // UDP
	closeOnce  sync.Once
	closers    []func() error
}

// NewUDPLink runs KCP over pc and smux over KCP. conv is the KCP
// conversation id; both ends must pass the same value (the agent's session
// index). server selects the smux role: the relay is the server, the agent
// the client; both may open streams.
//
// KCP runs in the link's own driver (arq.go), which costs nothing while
// the link is idle. kcp-go's UDPSession is used only where the tuning asks
// for FEC, which the driver does not do.
func NewUDPLink(pc *PacketConn, conv uint32, t Tuning, server bool) (*Link, error) {
	var kc kcpConn
	var c *arqConn
	if t.DataShards > 0 {
		ks, err := kcp.NewConn4(conv, pc.virtualAddr, nil, t.DataShards, t.ParityShards, false, pc)
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("start kcp: %w", err)
		}
		t.Apply(ks)
		kc = sessionConn{ks}
	} else {
		c = newARQConn(pc, conv, t)
		kc = c
	}
	arr := splice.NewArrivals()
	mux, err := newMux(kc, arr, t, server)
	if err != nil {
		kc.Close()
		pc.Close()
		return nil, err
	}
	return &Link{mux: mux, arrivals: arr, Transport: UDP, lastRecv: pc.LastReceive, act: &pc.act, forward: pc.Forward, setForward: pc.SetForwardHandler,
		srtt: kc.srtt, arq: c, pc: pc, closers: []func() error{mux.Close, kc.Close, pc.Close}}, nil
}

// NewParkingUDPLink runs the parked layout over pc (park.go): both ends
// must have said protocol.FlagParkable in the handshake. conv and server
// are as for NewUDPLink; the agent's end (server false) asks to park.
// FEC is not offered in this layout: it needs kcp-go's UDPSession, whose
// goroutines and tick are what parking saves.
func NewParkingUDPLink(pc *PacketConn, conv uint32, t Tuning, server bool) (*Link, error) {
	if err := smux.VerifyConfig(t.Smux()); err != nil {
		pc.Close()
		return nil, err
	}
	p := newParker(pc, conv, t, server)
	return &Link{park: p, arrivals: p.arrivals, Transport: UDP, lastRecv: pc.LastReceive, act: &pc.act, forward: pc.Forward, setForward: pc.SetForwardHandler,
		srtt: p.srtt, pc: pc, closers: []func() error{p.close, pc.Close}}, nil
}

// kcpConn is KCP as smux and the Link see it: the ARQ driver, or kcp-go's
// UDPSession where FEC is on.
type kcpConn interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Close() error
	srtt() time.Duration
}

type sessionConn struct{ *kcp.UDPSession }

func (s sessionConn) srtt() time.Duration { return time.Duration(s.GetSRTT()) * time.Millisecond }

// NewTCPLink runs smux directly over the sealed record stream, with the
// stream window sized to the connection's measured round trip (window.go).
func NewTCPLink(st *Stream, t Tuning, server bool) (*Link, error) {
	t = t.ForRTT(tcpRTT(st.Conn))
	arr := splice.NewArrivals()
	mux, err := newMux(st, arr, t, server)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &Link{mux: mux, arrivals: arr, Transport: TCP, lastRecv: st.LastReceive, act: &st.act, forward: st.Forward, setForward: st.SetForwardHandler,
		closers: []func() error{mux.Close, st.Close}}, nil
}

func newMux(c io.ReadWriteCloser, arr *splice.Arrivals, t Tuning, server bool) (*smux.Session, error) {
	c = arr.Wrap(c)
	if server {
		return smux.Server(c, t.Smux())
	}
	return smux.Client(c, t.Smux())
}

// Arrivals is what the owner's splice.Tunnels needs for the copies of
// this link's streams to give up their goroutines while idle.
func (l *Link) Arrivals() *splice.Arrivals { return l.arrivals }

// Conn is the control channel as its owner uses it: a smux stream, or
// the parked layout's control conversation.
type Conn interface {
	io.ReadWriter
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// OpenControl returns the control channel at the end that speaks first
// (the agent on its relay link, the initiator of a peer session): smux's
// first stream, which it opens, or the control conversation.
func (l *Link) OpenControl() (Conn, error) {
	if l.park != nil {
		return l.park.ctl, nil
	}
	st, err := l.mux.OpenStream()
	if err != nil {
		return nil, err
	}
	return st, nil
}

// AcceptControl waits up to timeout for the peer to open the control
// channel: its first smux stream, or the first bytes of the control
// conversation. Either proves the peer holds the session keys.
func (l *Link) AcceptControl(timeout time.Duration) (Conn, error) {
	if l.park != nil {
		c := l.park.ctl
		c.SetReadDeadline(time.Now().Add(timeout))
		err := c.waitData()
		c.SetReadDeadline(time.Time{})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	l.mux.SetDeadline(time.Now().Add(timeout))
	st, err := l.mux.AcceptStream()
	l.mux.SetDeadline(time.Time{})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// OpenStream opens a tunneled stream (after the control channel, on the
// smux layout).
func (l *Link) OpenStream() (*smux.Stream, error) {
	if l.park != nil {
		return l.park.openStream()
	}
	return l.mux.OpenStream()
}

// AcceptStream returns the next stream the peer opens.
func (l *Link) AcceptStream() (*smux.Stream, error) {
	if l.park != nil {
		return l.park.acceptStream()
	}
	return l.mux.AcceptStream()
}

// NumStreams counts the open streams, the control channel included.
func (l *Link) NumStreams() int {
	if l.park != nil {
		return 1 + l.park.numStreams()
	}
	return l.mux.NumStreams()
}

// IsClosed reports whether the link was closed.
func (l *Link) IsClosed() bool {
	if l.park != nil {
		return l.park.isClosed()
	}
	return l.mux.IsClosed()
}

// Parking reports whether the link runs the parked layout.
func (l *Link) Parking() bool { return l.park != nil }

// Parked reports whether the link holds no smux session and no data
// conversation right now (parked layout only).
func (l *Link) Parked() bool { return l.park != nil && l.park.isParked() }

// ParkStats returns how often the data conversation was parked and
// started, and how many datagrams of no current conversation (or park
// messages out of turn) were dropped.
func (l *Link) ParkStats() (parks, wakes, stale uint64) {
	if l.park == nil {
		return 0, 0, 0
	}
	return l.park.parks.Load(), l.park.wakes.Load(), l.park.stale.Load()
}

// OnPark sets a function called (on whichever goroutine parked it) each
// time the link parks its data conversation: the owner of thousands of
// links learns that memory became garbage (the relay's reclaimer). It
// does nothing on the smux layout.
func (l *Link) OnPark(f func()) {
	if l.park != nil {
		l.park.onParked.Store(&f)
	}
}

// LastReceive returns when the last authenticated packet arrived.
func (l *Link) LastReceive() time.Time { return l.lastRecv() }

// SRTT returns KCP's smoothed round-trip time (zero on TCP).
func (l *Link) SRTT() time.Duration {
	if l.srtt == nil {
		return 0
	}
	return l.srtt()
}

// Linger gives KCP time to deliver what was just written (a goodbye
// notice) before Close: about two round trips, at most max. TCP needs none:
// a written record is already in the kernel, which delivers it after close.
func (l *Link) Linger(max time.Duration) {
	if l.srtt == nil {
		return
	}
	time.Sleep(min(2*l.srtt()+30*time.Millisecond, max))
}

// Close closes smux, the transport and the sealed conn, in that order.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		for _, c := range l.closers {
			c()
		}
	})
	return nil
}
