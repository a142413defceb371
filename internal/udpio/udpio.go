// Package udpio gives a shared UDP socket batched I/O: recvmmsg for reads
// and a writer goroutine that drains queued datagrams with sendmmsg.
//
// Why: every KCP packet of every session goes through one socket, and
// kcp-go only batches when it owns a *net.UDPConn itself; behind our
// sealing PacketConn it falls back to one sendto per packet, and syscalls
// were more than half the CPU of a bulk transfer. A queue in front of a
// single writer batches exactly when it matters: while the writer is in a
// syscall, the next packets pile up and leave together; an idle link still
// sends each packet at once. On Linux a batch goes further: runs of
// equal-sized datagrams to one peer leave as one GSO message and arrive
// as one GRO read (gso_linux.go): one trip through the kernel's UDP and
// IP stack per run instead of one per datagram.
//
// Any net.PacketConn works: batching needs a real AF_INET *net.UDPConn,
// and every other socket (a test wrapper, an internal/netsim socket) gets
// plain one-datagram reads and writes through the same two calls, so the
// agent and relay keep one read path whatever they run on.
package udpio

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
)

const (
	// batch is the most datagrams one recvmmsg or sendmmsg moves.
	batch = 64
	// bufSize holds any datagram a pinhole socket accepts.
	bufSize = 2048
	// queueLen bounds datagrams waiting for the writer; a full queue makes
	// senders wait (KCP's flush), which is the back-pressure we want.
	queueLen = 1024
	// gsoSegs and gsoBytes bound one GSO message: the kernel's
	// UDP_MAX_SEGMENTS (64 before Linux 6.10) and, under IPv4's 65,507-byte
	// UDP payload, what one message may carry in all.
	gsoSegs  = 64
	gsoBytes = 65000
	// groBatch buffers of groSize take one recvmmsg when the kernel
	// coalesces (UDP_GRO): fewer than batch, as each must hold 64 KiB
	// (only the pages the kernel writes become resident).
	groBatch = 8
	groSize  = 64 << 10
	oobLen   = 32 // room for one UDP_SEGMENT or UDP_GRO control message
)

type outPkt struct {
	buf *[]byte
	n   int
	to  netip.AddrPort
}

var pool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Conn wraps a UDP socket. Reads go through ReadLoop, writes through Send.
type Conn struct {
	net.PacketConn
	batch *ipv4.PacketConn // nil unless the socket is a real AF_INET *net.UDPConn
	rc    syscall.RawConn  // the same socket's descriptor, when batch is set
	ap    addrPortConn     // the socket's allocation-free calls, if it has them
	gso   bool             // the writer hands runs of datagrams as one (gso_linux.go)
	gro   bool             // reads may return coalesced datagrams to split
	out   chan outPkt
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

// addrPortConn is what *net.UDPConn and internal/netsim sockets offer
// beyond net.PacketConn: reads and writes without a net.Addr per datagram.
// Wrappers that embed net.PacketConn do not have it, so their ReadFrom
// and WriteTo are the ones called.
type addrPortConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

// New wraps c and, when it batches, starts its writer. Close stops it.
func New(c net.PacketConn) *Conn {
	u := &Conn{PacketConn: c, out: make(chan outPkt, queueLen), done: make(chan struct{})}
	u.ap, _ = c.(addrPortConn)
	// An AF_INET6 socket (even dual-stack) cannot take the AF_INET
	// sockaddrs x/net marshals for IPv4 peers, so batch only on IPv4
	// sockets; others write one datagram at a time.
	if uc, ok := c.(*net.UDPConn); ok {
		la, _ := uc.LocalAddr().(*net.UDPAddr)
		if rc, err := uc.SyscallConn(); err == nil && la != nil && la.IP.To4() != nil {
			u.batch, u.rc = ipv4.NewPacketConn(uc), rc
			u.gso, u.gro = enableOffload(uc)
			u.wg.Go(u.writeLoop)
		}
	}
	return u
}

// NoCoalescing turns coalesced reads (UDP_GRO) off; call it before
// ReadLoop. A socket that anyone can flood needs it: with GRO a run of
// datagrams its peer sent with GSO waits in the receive queue as one
// buffer of up to 64 KiB, which a queue kept full by small datagrams
// drops whole, every time; without it the kernel queues the run's
// datagrams one by one, and most get in. A relay flooded from one address
// heard nothing from its agents with GRO (TestHandshakeFlood).
func (u *Conn) NoCoalescing() {
	if u.gro {
		u.gro = !disableGRO(u.PacketConn.(*net.UDPConn))
	}
}

// Send queues b for to; b may be reused when Send returns.
func (u *Conn) Send(b []byte, to netip.AddrPort) error {
	if len(b) > bufSize {
		return errors.New("datagram too large")
	}
	if u.batch == nil || !to.Addr().Unmap().Is4() {
		return u.writeOne(b, to)
	}
	return u.queue(b, to, true)
}

// SendNow writes b at once on the caller's goroutine when nothing waits
// for the writer, queues it behind what does when the queue has room
// (order kept), and writes it at once when the queue is full: it never
// waits for the writer. It is for lone small datagrams sent by a socket's
// reader (a relay's answers to keepalives, cookies, copies of a
// handshake answer): handing one to the writer cost a wake-up of its
// goroutine, more than the write, and a reader that waited for a full
// queue would read nothing meanwhile, its peers' ACKs and keepalives
// unanswered while their retransmissions filled the queue further.
func (u *Conn) SendNow(b []byte, to netip.AddrPort) error {
	if u.batch == nil || len(u.out) == 0 || len(b) > bufSize || !to.Addr().Unmap().Is4() {
		return u.writeOne(b, to)
	}
	if u.queue(b, to, false) == nil {
		return nil
	}
	return u.writeOne(b, to)
}

// queue hands a copy of b to the writer. With wait it waits for room
// (net.ErrClosed once the Conn is closed); without, it gives up at once
// when the queue is full (errQueueFull).
func (u *Conn) queue(b []byte, to netip.AddrPort, wait bool) error {
	bp := pool.Get().(*[]byte)
	p := outPkt{buf: bp, n: copy(*bp, b), to: to}
	// A queue with room takes p without a two-way select (the runtime's
	// selectgo was 2 % of a relay's CPU under bulk, one per datagram).
	select {
	case u.out <- p:
		return nil
	default:
	}
	err := errQueueFull
	if wait {
		select {
		case u.out <- p:
			return nil
		case <-u.done:
			err = net.ErrClosed
		}
	}
	pool.Put(bp)
	return err
}

// errQueueFull is queue's answer without wait when the writer is behind.
var errQueueFull = errors.New("writer queue full")

// writeOne writes b at once, without the writer.
func (u *Conn) writeOne(b []byte, to netip.AddrPort) error {
	if u.rc != nil && len(b) > 0 && to.Addr().Unmap().Is4() {
		return u.sendto(b, to)
	}
	if u.ap != nil {
		_, err := u.ap.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := u.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

func (u *Conn) writeLoop() {
	w := writer{u: u, addrs: map[netip.AddrPort]*net.UDPAddr{}}
	pending := make([]outPkt, 0, batch)
	for {
		select {
		case <-u.done:
			return
		case p := <-u.out:
			pending = append(pending[:0], p)
		}
	more:
		for len(pending) < batch {
			select {
			case p := <-u.out:
				pending = append(pending, p)
			default:
				break more
			}
		}
		w.flush(pending)
		for _, p := range pending {
			pool.Put(p.buf)
		}
	}
}

// writer is the state of the writer goroutine.
type writer struct {
	u     *Conn
	msgs  [batch]ipv4.Message
	bufs  [batch][]byte
	first [batch + 1]int // index in pending of each message's first datagram
	oob   [batch][oobLen]byte
	// Destination addresses as x/net wants them, cached so a bulk flow to
	// one peer does not allocate a *net.UDPAddr per packet. Reset when it
	// grows past a relay's worth of peers.
	addrs map[netip.AddrPort]*net.UDPAddr
}

func (w *writer) addrOf(ap netip.AddrPort) *net.UDPAddr {
	a := w.addrs[ap]
	if a == nil {
		if len(w.addrs) >= 4096 {
			clear(w.addrs)
		}
		a = net.UDPAddrFromAddrPort(ap)
		w.addrs[ap] = a
	}
	return a
}

// build makes messages of pending: with GSO, each run of datagrams to one
// address whose sizes are equal (the last may be shorter) is one message
// the kernel cuts into those datagrams (UDP_SEGMENT); without, one
// message per datagram. It returns the number of messages.
func (w *writer) build(pending []outPkt) int {
	m := 0
	for i := 0; i < len(pending); m++ {
		p, j := &pending[i], i+1
		// All but the last are p.n bytes: j+1-i of them fit in gsoBytes.
		for w.u.gso && j < len(pending) && j-i < gsoSegs && (j+1-i)*p.n <= gsoBytes &&
			pending[j].to == p.to && pending[j-1].n == p.n && pending[j].n <= p.n {
			j++
		}
		for k := i; k < j; k++ {
			w.bufs[k] = (*pending[k].buf)[:pending[k].n]
		}
		w.msgs[m].Buffers, w.msgs[m].Addr, w.msgs[m].OOB = w.bufs[i:j], w.addrOf(p.to), nil
		if j-i > 1 {
			w.msgs[m].OOB = putSegment(w.oob[m][:], p.n)
		}
		w.first[m] = i
		i = j
	}
	w.first[m] = len(pending)
	return m
}

// flush sends pending in as few sendmmsg calls as the kernel takes.
func (w *writer) flush(pending []outPkt) {
	for len(pending) > 0 {
		m := w.build(pending)
		n, err := w.u.batch.WriteBatch(w.msgs[:m], 0)
		if err != nil && w.u.gso && gsoRefused(err) {
			// This kernel or route cannot segment: never again on this
			// socket; the same datagrams go one per message.
			w.u.gso = false
			continue
		}
		if err != nil || n <= 0 {
			// A refused destination must not stall the others: skip
			// the message at the head and go on.
			n = 1
		}
		pending = pending[w.first[n]:]
	}
	clear(w.msgs[:])
}

// ReadLoop reads datagrams until the socket closes and calls handle for
// each; b is valid only during the call. It returns the error that ended
// it (net.ErrClosed after Close).
func (u *Conn) ReadLoop(handle func(b []byte, from netip.AddrPort)) error {
	if u.batch == nil {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := u.readOne(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return err
				}
				continue // ICMP errors surface here on Linux: keep reading
			}
			handle(buf[:n], unmap(from))
		}
	}
	return u.readBatches(handle)
}

// split hands a read to handle datagram by datagram: a coalesced read
// (seg > 0) holds datagrams of seg bytes each, the last may be shorter,
// all from one sender.
func split(b []byte, seg int, from netip.AddrPort, handle func(b []byte, from netip.AddrPort)) {
	if seg <= 0 {
		seg = len(b)
	}
	for {
		k := min(seg, len(b))
		handle(b[:k], from)
		if b = b[k:]; len(b) == 0 {
			return
		}
	}
}

// errNotUDP reports a datagram whose source is no UDP address.
var errNotUDP = errors.New("source is not a UDP address")

// readOne reads one datagram without batching.
func (u *Conn) readOne(b []byte) (int, netip.AddrPort, error) {
	if u.ap != nil {
		return u.ap.ReadFromUDPAddrPort(b)
	}
	n, addr, err := u.ReadFrom(b)
	if err != nil {
		return n, netip.AddrPort{}, err
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, netip.AddrPort{}, errNotUDP
	}
	return n, ua.AddrPort(), nil
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// Close closes the socket and stops the writer.
func (u *Conn) Close() error {
	err := u.PacketConn.Close()
	u.once.Do(func() { close(u.done) })
	u.wg.Wait()
	return err
}
