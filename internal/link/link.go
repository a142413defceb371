package link

import (
	"fmt"
	"sync"
	"time"

	"github.com/xtaci/kcp-go/v5"
	"github.com/xtaci/smux"
)

// Transport names the path a link runs on.
type Transport string

const (
	UDP Transport = "udp"
	TCP Transport = "tcp"
)

// Link is one authenticated agent-relay connection with its smux session.
type Link struct {
	Mux       *smux.Session
	Transport Transport

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
	mux, err := newMux(kc, t, server)
	if err != nil {
		kc.Close()
		pc.Close()
		return nil, err
	}
	return &Link{Mux: mux, Transport: UDP, lastRecv: pc.LastReceive, act: &pc.act, forward: pc.Forward, setForward: pc.SetForwardHandler,
		srtt: kc.srtt, arq: c, pc: pc, closers: []func() error{mux.Close, kc.Close, pc.Close}}, nil
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
	mux, err := newMux(st, t, server)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &Link{Mux: mux, Transport: TCP, lastRecv: st.LastReceive, act: &st.act, forward: st.Forward, setForward: st.SetForwardHandler,
		closers: []func() error{mux.Close, st.Close}}, nil
}

func newMux(c interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Close() error
}, t Tuning, server bool) (*smux.Session, error) {
	if server {
		return smux.Server(c, t.Smux())
	}
	return smux.Client(c, t.Smux())
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
