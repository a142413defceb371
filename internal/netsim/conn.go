package netsim

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// conn is a simulated UDP socket. It behaves as a *net.UDPConn does where
// pinhole relies on it: ReadFrom blocks until a datagram, the read
// deadline or Close; errors after Close wrap net.ErrClosed; deadline
// errors wrap os.ErrDeadlineExceeded (net.Error with Timeout() true);
// a datagram longer than the read buffer is truncated; a full receive
// queue drops new datagrams, as a full socket buffer does. Writes never
// block (the network has no back-pressure), so only a write deadline in
// the past matters.
//
// It also has ReadFromUDPAddrPort and WriteToUDPAddrPort, which
// internal/udpio prefers, so the simulation allocates no net.Addr per
// datagram on that path.
type conn struct {
	host  *Host
	local netip.AddrPort
	queue chan packet // receive buffer; never closed (senders may race Close)

	closeOnce sync.Once
	closed    chan struct{}
	rd, wd    deadline

	// Dropped counts datagrams lost to a full queue.
	dropped atomic.Uint64
}

func newConn(h *Host, local netip.AddrPort, queueLen int) *conn {
	return &conn{host: h, local: local, queue: make(chan packet, queueLen), closed: make(chan struct{}),
		rd: newDeadline(), wd: newDeadline()}
}

func (c *conn) enqueue(p packet) {
	select {
	case <-c.closed:
		return
	default:
	}
	select {
	case c.queue <- p:
	default:
		c.dropped.Add(1)
	}
}

func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: net.UDPAddrFromAddrPort(c.local), Err: err}
}

// ReadFromUDPAddrPort reads one datagram.
func (c *conn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	// A closed socket or an expired deadline fails even with data queued,
	// as the runtime's poller does.
	select {
	case <-c.closed:
		return 0, netip.AddrPort{}, c.opError("read", net.ErrClosed)
	case <-c.rd.wait():
		return 0, netip.AddrPort{}, c.opError("read", os.ErrDeadlineExceeded)
	default:
	}
	select {
	case p := <-c.queue:
		return copy(b, p.b), p.src, nil
	case <-c.closed:
		return 0, netip.AddrPort{}, c.opError("read", net.ErrClosed)
	case <-c.rd.wait():
		return 0, netip.AddrPort{}, c.opError("read", os.ErrDeadlineExceeded)
	}
}

// ReadFrom reads one datagram; the address is a *net.UDPAddr.
func (c *conn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteToUDPAddrPort sends b to addr; b may be reused when it returns.
func (c *conn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	select {
	case <-c.closed:
		return 0, c.opError("write", net.ErrClosed)
	case <-c.wd.wait():
		return 0, c.opError("write", os.ErrDeadlineExceeded)
	default:
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.Addr().Is4() || addr.Port() == 0 {
		return 0, c.opError("write", net.InvalidAddrError(addr.String()))
	}
	c.host.send(packet{src: c.local, dst: addr, b: append([]byte(nil), b...)})
	return len(b), nil
}

// WriteTo sends b to addr, a *net.UDPAddr or anything whose String is
// "ip:port".
func (c *conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(addr.String()); err != nil {
			return 0, c.opError("write", net.InvalidAddrError(addr.String()))
		}
	}
	return c.WriteToUDPAddrPort(b, ap)
}

// Close unbinds the port and wakes blocked reads with net.ErrClosed.
func (c *conn) Close() error {
	err := c.opError("close", net.ErrClosed)
	c.closeOnce.Do(func() {
		err = nil
		close(c.closed)
		c.rd.stop()
		c.wd.stop()
		c.host.release(c)
	})
	return err
}

// LocalAddr is a *net.UDPAddr, as callers of real sockets assume.
func (c *conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.local) }

func (c *conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *conn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *conn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// deadline is a channel closed when the deadline passes (the pattern of
// net.Pipe's pipeDeadline): waiters select on it beside their data.
type deadline struct {
	mu     *sync.Mutex // guards timer and cancel
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
}

func newDeadline() deadline {
	return deadline{mu: new(sync.Mutex), cancel: make(chan struct{})}
}

// set arms the deadline; a zero t clears it, a past t expires it now.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for its close so we can replace the channel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// stop disarms the timer so Close leaves nothing behind.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel
	}
	d.timer = nil
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
