package relay

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/pinhole/pinhole/internal/link"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
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

// tcpHandshakeTries bounds the initiations one TCP connection may send:
// the first, and one more after each cookie.
const tcpHandshakeTries = 3

func (r *Relay) handleTCP(ctx context.Context, c net.Conn) {
	from := netip.MustParseAddrPort(c.RemoteAddr().String())
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	c.SetDeadline(time.Now().Add(tcpHandshakeTimeout))
	br := bufio.NewReaderSize(c, 32<<10)
	reply := func(b []byte) { link.WriteRecord(c, b) }
	buf := make([]byte, 1024)
	for try := 0; ; try++ {
		rec, err := link.ReadRecord(br, buf)
		if err != nil || try == tcpHandshakeTries {
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
		// Same gates and budgets as UDP; a cookie answer leaves the
		// connection open for the agent's next try.
		v := r.admit(rec, from, link.TCP, reply)
		var sess *secure.Session
		var entry *AgentEntry
		var m2 []byte
		var resp *secure.Response
		if v == verdictOpen || v == verdictProven {
			sess, entry, m2, resp, v = r.accept(rec, from, link.TCP, reply)
		}
		if v == verdictCookie {
			continue
		}
		if sess == nil {
			r.stats.TCPRejected.Add(1)
			c.Close()
			return
		}
		r.serveTCP(ctx, c, br, from, sess, entry, m2, resp)
		return
	}
}

func (r *Relay) serveTCP(ctx context.Context, c net.Conn, br *bufio.Reader, from netip.AddrPort,
	sess *secure.Session, entry *AgentEntry, m2 []byte, resp *secure.Response) {
	s := newSession(r, entry, sess.LocalIndex, link.TCP, from, resp.Timestamp)
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
	if !r.join(s) { // TCP sessions hold an index only to count as pending
		return
	}
	s.run(ctx)
}
