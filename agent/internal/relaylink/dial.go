// Package relaylink establishes the agent's authenticated link to a relay:
// the Noise IK handshake over the shared UDP socket, KCP and smux on top,
// and, when UDP gets no answer, the same handshake and framing over TCP to
// the same port number. It knows nothing about exposures or control
// messages; the agent drives those over the link it returns.
package relaylink

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/pinhole/pinhole/agent/internal/demux"
	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/internal/slog"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// Mode selects the transports Dial may use.
type Mode int

const (
	Auto Mode = iota // UDP, then TCP when UDP gets no answer
	UDPOnly
	TCPOnly
)

// Target is one relay from the agent's config.
type Target struct {
	Address   string // host:port
	PublicKey secure.PublicKey
}

// Dialer holds what every dial needs.
type Dialer struct {
	Key    secure.PrivateKey
	Socket *demux.Socket
	Tuning link.Tuning
	Log    *slog.Logger
	// UDPWait is how long UDP handshakes are retried before Auto falls
	// back to TCP (default 3s); the handshake is sent again after 1 s,
	// then after growing gaps (retry.go).
	UDPWait time.Duration
	// Resolver looks up relay host names (default net.DefaultResolver).
	Resolver *net.Resolver
	// Now is the wall clock for handshake timestamps (default time.Now);
	// tests give agents wrong clocks through it.
	Now func() time.Time
	// Prepared keeps Key prepared per relay across dials (nil: prepared
	// again for each initiation).
	Prepared *Prepared
}

func (d *Dialer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Conn is an established link to a relay.
type Conn struct {
	*link.Link
	Target   Target
	Addr     netip.AddrPort // the relay address dialed
	Observed netip.AddrPort // our address as the relay saw it
	// ClockOffset is the relay's clock minus ours, measured during the
	// handshake (zero when the relay did not say).
	ClockOffset time.Duration

	closeOnce sync.Once
	cleanup   func()
}

// Close closes the link and releases its session index.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.Link.Close()
		if c.cleanup != nil {
			c.cleanup()
		}
	})
	return nil
}

// tcpHandshakeWait bounds connecting and handshaking over TCP.
const tcpHandshakeWait = 10 * time.Second

// udpOnlyWait is how long a UDP-only dial keeps trying without an answer
// (less when the caller's deadline is near; longer once a cookie shows
// the relay busy, busyWait).
const udpOnlyWait = 20 * time.Second

// ErrNoAnswer reports that no handshake response arrived in time.
var ErrNoAnswer = errors.New("no handshake answer")

// Dial resolves the target and establishes a link with the given mode.
func (d *Dialer) Dial(ctx context.Context, t Target, mode Mode) (*Conn, error) {
	addr, err := d.resolve(ctx, t.Address)
	if err != nil {
		return nil, err
	}
	switch mode {
	case TCPOnly:
		return d.dialTCP(ctx, t, addr)
	case UDPOnly:
		// No fallback to wait for: keep trying for most of the caller's
		// deadline, then say what came back (nothing, cookies, ...).
		wait := udpOnlyWait
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, max(time.Until(dl)*3/4, time.Second))
		}
		return d.dialUDP(ctx, t, addr, wait)
	}
	c, err := d.dialUDP(ctx, t, addr, d.udpWait())
	if err == nil || !errors.Is(err, ErrNoAnswer) || ctx.Err() != nil {
		return c, err
	}
	d.Log.Info("relay does not answer over udp, trying tcp", "relay", t.Address, "waited", d.udpWait())
	return d.dialTCP(ctx, t, addr)
}

// ProbeUDP reports whether a UDP handshake with the relay now succeeds; the
// agent calls it while on the TCP fallback. The session it creates is
// closed at once and never confirmed, so the relay drops it.
func (d *Dialer) ProbeUDP(ctx context.Context, t Target) bool {
	addr, err := d.resolve(ctx, t.Address)
	if err != nil {
		return false
	}
	idx := NewIndex()
	ans := newAnswers(addr)
	d.Socket.Register(idx, ans.offer)
	defer d.Socket.Unregister(idx)
	_, _, err = d.handshakeUDP(ctx, t, idx, ans, d.udpWait())
	return err == nil
}

func (d *Dialer) udpWait() time.Duration {
	if d.UDPWait > 0 {
		return d.UDPWait
	}
	return 3 * time.Second
}

func (d *Dialer) resolve(ctx context.Context, hostport string) (netip.AddrPort, error) {
	return Resolve(ctx, d.Resolver, hostport)
}

// Resolve turns a relay's host:port into an address with r (nil:
// net.DefaultResolver), preferring IPv4.
func Resolve(ctx context.Context, r *net.Resolver, hostport string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("relay address %q: %w", hostport, err)
	}
	port, err := net.LookupPort("udp", portStr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("relay address %q: %w", hostport, err)
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve relay %s: %w", host, err)
	}
	// Prefer IPv4: a router's IPv6 uplink is the one more often broken.
	best := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip
			break
		}
	}
	return netip.AddrPortFrom(best.Unmap(), uint16(port)), nil
}

// NewIndex returns a random session index (the relay link's, and the peer
// sessions' the agent runs beside it on the same socket).
func NewIndex() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// closedNoAnswer is the error for a relay that closed a TCP connection
// before answering the handshake. The relay refuses an unlisted agent key
// with a Refuse (see refusal), so a bare close says nothing about that
// key: the relay may be restarting or shedding load, and one that drops
// handshakes made for another relay key (mac1) cannot say so either. The
// message names the possibilities and blames nothing.
func closedNoAnswer(t Target) error {
	return fmt.Errorf("relay %s over tcp: closed the connection during the handshake, %w (the relay may be restarting or overloaded, "+
		"or the relay public_key in the agent config is not this relay's: a relay drops handshakes made for another key unanswered)", t.Address, ErrNoAnswer)
}

// ErrRefused reports that the relay answered the handshake with a refusal
// (an unknown agent key, another protocol version).
var ErrRefused = errors.New("refused")

func versionError(r protocol.Refuse) error {
	return fmt.Errorf("relay %w: %v (relay speaks version %d, this agent %d)", ErrRefused, r.Code, r.Version, protocol.Version)
}

func (d *Dialer) dialTCP(ctx context.Context, t Target, addr netip.AddrPort) (*Conn, error) {
	var nd net.Dialer
	dctx, cancel := context.WithTimeout(ctx, tcpHandshakeWait)
	defer cancel()
	c, err := nd.DialContext(dctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("dial relay %s over tcp: %w", t.Address, err)
	}
	stop := context.AfterFunc(dctx, func() { c.SetDeadline(time.Now()) })
	sess, payload, br, err := d.handshakeTCP(c, t, addr)
	if !stop() || err != nil {
		c.Close()
		if err == nil {
			err = dctx.Err()
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, closedNoAnswer(t)
		}
		return nil, fmt.Errorf("handshake with relay %s over tcp: %w", t.Address, err)
	}
	c.SetDeadline(time.Time{})
	st := link.NewStream(c, br, sess.Session, nil)
	l, err := link.NewTCPLink(st, d.Tuning, false)
	if err != nil {
		return nil, err
	}
	return &Conn{Link: l, Target: t, Addr: addr, Observed: payload.Observed, ClockOffset: sess.clockOffset}, nil
}

// handshakeTCP runs the handshake on a fresh TCP connection: the relay may
// answer with a cookie first (then the initiation is sent again with it,
// on the same connection) or with a refusal.
func (d *Dialer) handshakeTCP(c net.Conn, t Target, addr netip.AddrPort) (*established, protocol.HandshakePayload, *bufio.Reader, error) {
	h := &initiator{d: d, t: t, index: NewIndex()}
	br := bufio.NewReaderSize(c, 32<<10)
	buf := make([]byte, 512)
	for try := 0; try < 3; try++ {
		m1, err := h.next()
		if err != nil {
			return nil, protocol.HandshakePayload{}, nil, err
		}
		if err := link.WriteRecord(c, m1); err != nil {
			return nil, protocol.HandshakePayload{}, nil, err
		}
		rec, err := link.ReadRecord(br, buf)
		if err != nil {
			return nil, protocol.HandshakePayload{}, nil, err
		}
		if r, rerr := protocol.ParseRefuse(rec); rerr == nil {
			if err := refusal(r, d, t); err != nil {
				return nil, protocol.HandshakePayload{}, nil, err
			}
			return nil, protocol.HandshakePayload{}, nil, fmt.Errorf("relay %w: %v", ErrRefused, r.Code)
		}
		if _, cerr := protocol.ParseCookieHeader(rec); cerr == nil {
			h.takeCookie(rec)
			continue
		}
		sess, p, err := h.finish(rec)
		return sess, p, br, err
	}
	return nil, protocol.HandshakePayload{}, nil, h.noSession("tcp", tcpHandshakeWait)
}
