// Package netcheck measures the NAT between the agent and the internet
// with STUN against its relay (RFC 5780 §4, the method the seed article
// describes with two server addresses and the port delta): the public
// mapping, the mapping and filtering behaviours (RFC 4787 §4.1, §5), how
// ports are allocated, and hairpinning (RFC 4787 REQ-9).
//
// The mapping tests run on the agent's own socket, so what is measured is
// the mapping its tunnel uses; filtering and port allocation need fresh
// mappings, so they run on short-lived probe sockets (a filtering test on
// the main socket would pass through holes the tunnel itself opened).
// Every test is bounded by a timeout: a server that never answers, or
// answers from the wrong address, ends as "unknown", never as a hang.
package netcheck

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pinhole/pinhole/protocol/stun"
)

// Timing. A positive answer takes one round trip; a negative one (a
// filtered response) can only be concluded after waiting, so the wait
// bounds the whole check (`pinhole nat` must answer within 3 s).
const (
	// retransmit is the STUN retransmission schedule within one
	// transaction (RFC 8489 §6.2.1 uses a 500 ms RTO and doubling; shorter
	// here because the relay is one known server and loss is retried).
	firstRetransmit = 200 * time.Millisecond
	// answerWait bounds a transaction that must be answered.
	answerWait = 1200 * time.Millisecond
	// negativeWait is how long a test waits before concluding that a
	// response was filtered.
	negativeWait = 900 * time.Millisecond
)

// ErrNoUDP reports that the relay's STUN server never answered over UDP.
var ErrNoUDP = errors.New("no STUN answer over udp")

// Config says where to probe and how to open sockets.
type Config struct {
	// Relay is the relay's UDP address; its STUN server shares the port.
	Relay netip.AddrPort
	// Send writes a datagram from the agent's main socket, whose STUN
	// input the caller hands to Checker.Deliver.
	Send func(b []byte, to netip.AddrPort) error
	// Local is the main socket's address.
	Local netip.AddrPort
	// Listen opens a fresh probe socket on the main socket's IP.
	Listen func() (net.PacketConn, error)
}

// answer is one STUN message addressed to a pending transaction.
type answer struct {
	msg  stun.Message
	from netip.AddrPort
}

// Checker runs checks; one at a time per Checker. mu guards pending.
type Checker struct {
	cfg Config

	mu      sync.Mutex
	pending map[stun.TxID]chan answer
}

// New returns a Checker for cfg.
func New(cfg Config) *Checker {
	return &Checker{cfg: cfg, pending: map[stun.TxID]chan answer{}}
}

// Deliver takes a STUN message that arrived on the main socket (or a probe
// socket). Responses go to their transaction; a request whose transaction
// is ours is a hairpinned probe. Anything else is dropped.
func (c *Checker) Deliver(b []byte, from netip.AddrPort) {
	m, err := stun.Parse(b)
	if err != nil {
		return
	}
	c.mu.Lock()
	ch := c.pending[m.TxID]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	m.Attrs = append([]stun.Attr(nil), m.Attrs...)
	for i := range m.Attrs {
		m.Attrs[i].Value = append([]byte(nil), m.Attrs[i].Value...)
	}
	select {
	case ch <- answer{msg: m, from: from}:
	default:
	}
}

// expect registers a transaction; done removes it.
func (c *Checker) expect(tx stun.TxID) (ch chan answer, done func()) {
	ch = make(chan answer, 4)
	c.mu.Lock()
	c.pending[tx] = ch
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.pending, tx)
		c.mu.Unlock()
	}
}

// transact sends req (transaction tx) with send, retransmitting with a
// doubling interval, until a response from want arrives or wait passes.
// ok is false on a timeout or an error response; a response from another
// address is ignored (a server answering from the wrong address, or a
// forgery, cannot make a test pass).
func (c *Checker) transact(ctx context.Context, send func([]byte) error, want netip.AddrPort, tx stun.TxID, req []byte, wait time.Duration) (answer, bool) {
	ch, done := c.expect(tx)
	defer done()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	rto := firstRetransmit
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return answer{}, false
		case <-deadline.C:
			return answer{}, false
		case <-retry.C:
			send(req)
			retry.Reset(rto)
			rto *= 2
		case a := <-ch:
			if a.from != want {
				continue
			}
			if a.msg.Type != stun.TypeBindingSuccess {
				return a, false
			}
			return a, true
		}
	}
}

// mainSend sends from the agent's socket to addr.
func (c *Checker) mainSend(addr netip.AddrPort) func([]byte) error {
	return func(b []byte) error { return c.cfg.Send(b, addr) }
}

// probe is a fresh socket whose STUN input feeds the Checker.
type probe struct {
	pc    net.PacketConn
	local netip.AddrPort
	done  chan struct{}
}

func (c *Checker) openProbe() (*probe, error) {
	pc, err := c.cfg.Listen()
	if err != nil {
		return nil, err
	}
	p := &probe{pc: pc, done: make(chan struct{})}
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		p.local = ua.AddrPort()
	} else {
		p.local, _ = netip.ParseAddrPort(pc.LocalAddr().String())
	}
	go func() {
		defer close(p.done)
		c.Feed(pc)
	}()
	return p, nil
}

// Feed reads pc until it is closed and hands every STUN message to
// Deliver: the reader of a socket that is not the agent's demux (probe
// sockets, and `pinhole nat`'s own main socket).
func (c *Checker) Feed(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if ap, err := netip.ParseAddrPort(from.String()); err == nil && stun.Is(buf[:n]) {
			c.Deliver(buf[:n], netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
}

func (p *probe) send(to netip.AddrPort) func([]byte) error {
	return func(b []byte) error {
		_, err := p.pc.WriteTo(b, net.UDPAddrFromAddrPort(to))
		return err
	}
}

func (p *probe) close() {
	p.pc.Close()
	<-p.done
}
