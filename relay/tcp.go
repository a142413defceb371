package relay

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
)

// tcpHandshakeTimeout bounds how long a TCP connection may take to send a
// valid handshake; scanners and garbage are cut off after it.
const tcpHandshakeTimeout = 10 * time.Second

func (r *Relay) acceptTCP(ctx context.Context) {
	for {
		c, err := r.tcp.Accept()
		if err != nil {
			if isClosed(err) || ctx.Err() != nil {
				return
			}
			time.Sleep(50 * time.Millisecond) // EMFILE and friends: back off
			continue
		}
		r.sessions.Go(func() { r.handleTCP(ctx, c) })
	}
}

func (r *Relay) handleTCP(ctx context.Context, c net.Conn) {
	from := netip.MustParseAddrPort(c.RemoteAddr().String())
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	c.SetDeadline(time.Now().Add(tcpHandshakeTimeout))
	br := bufio.NewReaderSize(c, 32<<10)
	rec, err := link.ReadRecord(br, make([]byte, 1024))
	if err != nil {
		r.stats.TCPRejected.Add(1)
		c.Close()
		return
	}
	if t, err := protocol.Classify(rec); err != nil || t != protocol.TypeHandshakeInit {
		r.stats.TCPRejected.Add(1)
		r.stats.Malformed.Add(1)
		c.Close()
		return
	}
	if !r.limiter.allow(from.Addr(), time.Now()) { // same budget as UDP handshakes
		r.stats.HandshakeDropped.Add(1)
		r.stats.TCPRejected.Add(1)
		c.Close()
		return
	}
	sess, entry, m2, _ := r.accept(rec, from, link.TCP, func(ref protocol.Refuse) {
		link.WriteRecord(c, protocol.AppendRefuse(nil, ref))
	})
	if sess == nil {
		r.stats.TCPRejected.Add(1)
		c.Close()
		return
	}
	s := newSession(r, entry, sess.LocalIndex, link.TCP, from)
	if err := link.WriteRecord(c, m2); err != nil {
		r.release(s)
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	l, err := link.NewTCPLink(link.NewStream(c, br, sess, nil), r.cfg.Load().Tuning, true)
	if err != nil {
		r.release(s)
		return
	}
	s.link = l
	r.mu.Lock()
	r.byIndex[s.index] = s // TCP sessions hold an index only to count as pending
	r.pending[s.key]++
	r.mu.Unlock()
	s.run(ctx)
}
