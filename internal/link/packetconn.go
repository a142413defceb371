package link

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

const sealOverhead = secure.Overhead

// inboxLen bounds the datagrams waiting to be opened (rxqueue.go). When
// the queue is full the newest is dropped: KCP retransmits, and a stalled
// session cannot make the shared socket's reader wait.
const inboxLen = 2048

// Sender writes one sealed datagram toward addr.
type Sender func(b []byte, addr netip.AddrPort) error

type inbound struct {
	buf  *[]byte
	n    int
	from netip.AddrPort // invalid for a datagram forwarded by the relay
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, protocol.MaxDatagram+64); return &b }}

// PacketConn carries one session's KCP packets. The demultiplexer calls
// Deliver with sealed datagrams, which wait in a small queue (rxqueue.go)
// until the session's own goroutine opens them (so decryption of
// different sessions runs in parallel): the drain goroutine of the ARQ
// driver (arq.go), or, where FEC is on, kcp-go's reader calling ReadFrom,
// PacketConn being the net.PacketConn kcp-go's UDPSession runs on.
// KCP's packets are sealed and handed to the Sender (sendKCP, WriteTo).
//
// ReadFrom and WriteTo always name the same fixed peer address to kcp-go;
// the real address can change under it (roaming, see path.go) without KCP
// noticing.
type PacketConn struct {
	sess   *secure.Session
	send   Sender
	peer   atomic.Pointer[netip.AddrPort] // where WriteTo sends
	rx     rxQueue
	closed chan struct{}
	once   sync.Once

	confirmed        atomic.Bool
	onConfirm        func()               // first authenticated packet; may be nil
	onRoam           func(netip.AddrPort) // peer moved to a validated new address; nil: never move
	path             pathValidator
	lastRecv         atomic.Int64                       // unix nanos of the last authenticated packet
	lastDirect       atomic.Int64                       // unix nanos of the last one that came directly
	lastValid        atomic.Int64                       // unix nanos of the last answered path challenge
	lastSent         atomic.Int64                       // unix nanos of the last datagram sent directly
	relay            atomic.Pointer[func([]byte) error] // the relay path; nil: none
	onForward        atomic.Pointer[ForwardHandler]     // DataForward datagrams (agent-relay links)
	onKeepalive      atomic.Pointer[KeepaliveHandler]   // answered keepalives (the agent's relay link)
	onPark           atomic.Pointer[parkHandler]        // park requests and answers (park.go)
	resendInFlight   atomic.Pointer[func()]             // retransmit what is in flight now: the peer moved or was heard again
	answerKeepalives atomic.Bool                        // the relay's end of an agent's link
	answerVia        Sender                             // where answers leave (set before answerKeepalives)
	viaRelay         atomic.Bool                        // WriteTo uses the relay path
	Direct           atomic.Uint64                      // authenticated datagrams that came directly
	Relayed          atomic.Uint64                      // authenticated datagrams the relay forwarded
	Dropped          atomic.Uint64                      // queue full
	AuthFailed       atomic.Uint64                      // failed authentication or replay
	UnknownKind      atomic.Uint64                      // authenticated, of a kind this build does not know
	ParitySent       atomic.Uint64                      // FEC parity datagrams sent (fec.go)
	ParityIn         atomic.Uint64                      // FEC parity datagrams received
	ParityDropped    atomic.Uint64                      // malformed or contradicting parity, failed repairs
	Recovered        atomic.Uint64                      // KCP datagrams rebuilt from parity
	BytesIn          atomic.Uint64                      // plaintext bytes of authenticated KCP datagrams
	BytesOut         atomic.Uint64                      // plaintext bytes sent
	virtualAddr      net.Addr
	act              activity // what KCP sends, for the owner's heartbeat (activity.go)
	fec              fecSender
	fecRx            fecReceiver // touched only by the goroutine that opens datagrams
}

// NewPacketConn wraps sess. peer is the address datagrams go to. With
// onRoam set, the conn follows its peer to a new address once that address
// has answered a path challenge (NAT rebinding); with onRoam nil the peer
// address is fixed (the agent's relay).
func NewPacketConn(sess *secure.Session, peer netip.AddrPort, send Sender, onConfirm func(), onRoam func(netip.AddrPort)) *PacketConn {
	c := &PacketConn{
		sess: sess, send: send, closed: make(chan struct{}),
		onConfirm: onConfirm, onRoam: onRoam,
		virtualAddr: net.UDPAddrFromAddrPort(peer),
	}
	c.rx.wake = make(chan struct{}, 1)
	c.peer.Store(&peer)
	return c
}

func (c *PacketConn) Session() *secure.Session { return c.sess }

// Peer returns the address datagrams currently go to.
func (c *PacketConn) Peer() netip.AddrPort { return *c.peer.Load() }

// LastReceive returns when the last authenticated packet arrived.
func (c *PacketConn) LastReceive() time.Time { return unixNano(c.lastRecv.Load()) }

// Deliver queues a sealed datagram that came straight from from. It never
// blocks and reports false when the datagram was dropped.
func (c *PacketConn) Deliver(b []byte, from netip.AddrPort) bool {
	if !from.IsValid() {
		c.Dropped.Add(1)
		return false
	}
	return c.deliver(b, from)
}

// DeliverRelayed queues a sealed datagram the relay forwarded from the
// peer. It authenticates like any other, but says nothing about the
// peer's address: it never moves the direct path (see path.go).
func (c *PacketConn) DeliverRelayed(b []byte) bool {
	return c.deliver(b, netip.AddrPort{})
}

func (c *PacketConn) deliver(b []byte, from netip.AddrPort) bool {
	if len(b) > protocol.MaxDatagram+64 {
		c.Dropped.Add(1)
		return false
	}
	bp := bufPool.Get().(*[]byte)
	n := copy(*bp, b)
	if c.push(inbound{buf: bp, n: n, from: from}) {
		return true
	}
	bufPool.Put(bp)
	c.Dropped.Add(1)
	return false
}

func (c *PacketConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// ReadFrom returns the next authenticated KCP packet (kcp-go's reader,
// FEC only). Packets that fail to authenticate are counted and skipped.
func (c *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if c.isClosed() { // closed wins over queued packets
			return 0, nil, net.ErrClosed
		}
		in, ok := c.pop()
		if !ok {
			select {
			case <-c.closed:
			case <-c.rx.wake:
			}
			continue
		}
		out, ok := c.open(p[:0], in, nil, nowNano())
		bufPool.Put(in.buf)
		if ok {
			return len(out), c.virtualAddr, nil
		}
	}
}

// open authenticates one queued datagram into dst and acts on it: a KCP
// packet is returned (ok true), path and forwarding datagrams are handled
// here, and one that fails to authenticate, or is of a kind this build
// does not know, is counted and dropped. sink, set in the ARQ driver's
// mode, measures loss and takes KCP packets rebuilt from parity (fec.go);
// ReadFrom's caller (kcp-go's own FEC) passes nil. now is the time it
// counts the datagram in at (unix nanos): the drain reads the clock once
// per batch.
func (c *PacketConn) open(dst []byte, in inbound, sink func([]byte, bool), now int64) (kcpPacket []byte, ok bool) {
	sealed := (*in.buf)[:in.n]
	kind := protocol.DataKind(sealed[1]) // authenticated by Open
	out, err := c.sess.Open(dst, sealed)
	if err != nil {
		c.AuthFailed.Add(1)
		return nil, false
	}
	c.authenticated(in.from, now)
	if sink != nil {
		c.fecMeter(sealed, now)
	}
	switch kind {
	case protocol.DataKCP:
		c.BytesIn.Add(uint64(len(out)))
		c.maybeValidate(in.from)
		if sink != nil {
			c.fecKeep(sealed, out, now)
		}
		return out, true
	case protocol.DataPathChallenge:
		c.answerChallenge(out, in.from)
		c.challengeBack(in.from) // a punching peer: validate its address too
	case protocol.DataPathResponse:
		c.checkResponse(out, in.from)
	case protocol.DataForward:
		c.forwarded(out)
	case protocol.DataKeepalive:
		c.keepalive(out, in.from)
	case protocol.DataKeepaliveAck:
		c.keepaliveAck(out)
	case protocol.DataPark, protocol.DataParkAck:
		if h := c.onPark.Load(); h != nil {
			(*h)(kind, out)
		}
	case protocol.DataParity:
		if sink != nil {
			c.fecParity(out, now, sink)
		}
	case protocol.DataLossReport:
		if exp, got, err := protocol.ParseLossReport(out); err == nil && sink != nil {
			c.fec.report(exp, got)
		}
	default:
		c.UnknownKind.Add(1)
	}
	return nil, false
}

// heardAgainAfter is the silence after which an authenticated datagram
// from the peer makes the link retransmit what it has in flight at once.
// A peer that sent nothing, not even an ACK, for this long while
// segments waited was cut off; the path it is heard on works again. The
// usual cause is a NAT that forgot the agent's mapping: the relay's
// segments were dropped at the NAT until the agent's next heartbeat made
// a new one, and by then KCP had backed their timeouts off to seconds
// (half a timeout more per retransmission). Where the NAT gives the new
// mapping a new port the relay sees a move (path.go) and resends; where
// it keeps the port, only the silence tells. A second is several round
// trips on any path KCP is tuned for, and a link with nothing in flight
// resends nothing.
const heardAgainAfter = int64(time.Second)

// authenticated notes an authenticated datagram from from, at now (unix
// nanos).
func (c *PacketConn) authenticated(from netip.AddrPort, now int64) {
	if prev := c.lastRecv.Swap(now); prev != 0 && now-prev >= heardAgainAfter {
		if f := c.resendInFlight.Load(); f != nil {
			(*f)()
		}
	}
	if from.IsValid() {
		c.Direct.Add(1)
		c.lastDirect.Store(now)
	} else {
		c.Relayed.Add(1)
	}
	if !c.confirmed.Load() && c.confirmed.CompareAndSwap(false, true) && c.onConfirm != nil {
		c.onConfirm()
	}
}

// WriteTo seals p and sends it to the current peer address; addr is
// ignored (it is always the virtual address kcp-go was given).
func (c *PacketConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	if err := c.sendKCP(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// sendKCPBatch seals and sends the packets one flush made, each held
// behind protocol.DataHeaderLen bytes of room in its buffer (arqConn's
// queueOutLocked). All are sealed where they lie before the first is
// sent: the socket's writer, woken by the first, then finds the flush's
// packets queued together and sends them as one batch (GSO runs of up to
// the whole flush) instead of taking them one seal at a time. Where
// parity is on, each goes through sendKCP, which keeps its plaintext for
// the parity group.
func (c *PacketConn) sendKCPBatch(out []*[]byte) {
	if c.isClosed() {
		return
	}
	if c.fec.active.Load() {
		for _, bp := range out {
			c.sendKCP((*bp)[protocol.DataHeaderLen:])
		}
		return
	}
	for _, bp := range out {
		pkt, err := c.sess.SealInPlace(*bp)
		if err != nil {
			pkt = (*bp)[:0] // nonce space exhausted: the link reconnects
		}
		*bp = pkt
	}
	var bytes, datagrams uint64
	path := c.selectPath()
	for _, bp := range out {
		if len(*bp) > 0 && path.send(*bp) == nil {
			bytes += uint64(len(*bp) - sealOverhead)
			datagrams++
		}
	}
	if datagrams > 0 {
		c.BytesOut.Add(bytes)
		c.act.wroteN(datagrams)
	}
}

// sendKCP seals one KCP packet and sends it on the selected path.
func (c *PacketConn) sendKCP(p []byte) error {
	if c.isClosed() {
		return net.ErrClosed
	}
	bp := bufPool.Get().(*[]byte)
	pkt, err := c.sess.Seal((*bp)[:0], p)
	var ctr uint64
	if err == nil {
		ctr = protocol.DataCounter(pkt)
		err = c.sendOnPath(pkt)
	}
	bufPool.Put(bp)
	if err != nil {
		return err
	}
	c.BytesOut.Add(uint64(len(p)))
	c.act.wrote()
	if c.fec.active.Load() {
		c.fecAdd(ctr, p)
	}
	return nil
}

// Close stops ReadFrom and WriteTo and frees queued datagrams; it does not
// touch the shared socket.
func (c *PacketConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		// a running drain goroutine holds its own batch and exits at
		// its next look at the queue
		c.rx.mu.Lock()
		q := c.rx.q
		c.rx.q, c.rx.head = nil, 0
		c.rx.mu.Unlock()
		c.recycle(q)
	})
	return nil
}

func (c *PacketConn) LocalAddr() net.Addr                { return &net.UDPAddr{} }
func (c *PacketConn) SetDeadline(t time.Time) error      { return nil }
func (c *PacketConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *PacketConn) SetWriteDeadline(t time.Time) error { return nil }
