package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/protocol/stun"
)

// The relay is a STUN server (RFC 8489 Binding) on its own UDP port, told
// apart from pinhole datagrams by the magic cookie, so an agent learns the
// mapping its tunnel really uses. With alt_listen (another IP of the host
// and another port) it also answers RFC 5780 behaviour discovery: it opens
// the three other (IP, port) combinations, answers CHANGE-REQUEST from
// them, and names OTHER-ADDRESS and RESPONSE-ORIGIN.
//
// STUN is unauthenticated by design, so the server is no reflector:
//   - an answer goes only to the request's source (RESPONSE-PORT, which
//     would send it elsewhere, is refused with 420);
//   - an answer never carries PADDING or SOFTWARE: it is at most 100 bytes
//     (IPv6, all attributes), whatever the request asked for;
//   - answers are rate-limited per source IP;
//   - a delayed answer (PINHOLE-DELAY, for the agent's mapping-lifetime
//     measurement; stundelay.go) obeys the same rules and is bounded per
//     source IP and in total.

// Per-source STUN budget: NAT discovery sends about ten requests in a
// second and lifetime probing a few a minute; carrier-grade NATs put many
// agents behind one address.
const (
	stunRate  = 20.0
	stunBurst = 100.0
)

// socket index into stunServer.socks: bit 0 = alternate port, bit 1 =
// alternate IP. Index 0 is the relay's main socket.
const (
	altPort = 1
	altIP   = 2
)

type stunServer struct {
	r     *Relay
	addrs [4]netip.AddrPort // the address of each socket
	socks [4]net.PacketConn // [0] unused: the main socket is r.uio
	alt   bool              // RFC 5780 discovery available

	limit rateTable[netip.Addr] // per source IP

	requests, dropped atomic.Uint64

	delayed delayer // PINHOLE-DELAY answers waiting (stundelay.go)
}

// newSTUNServer opens the alternate sockets when cfg names alt_listen.
func newSTUNServer(r *Relay, cfg *Config) (*stunServer, error) {
	s := &stunServer{r: r}
	s.addrs[0] = r.udpAddr
	if cfg.AltListen == "" {
		return s, nil
	}
	alt, err := netip.ParseAddrPort(cfg.AltListen)
	if err != nil {
		return nil, fmt.Errorf("alt_listen %q: %w", cfg.AltListen, err)
	}
	prim := r.udpAddr
	if !prim.Addr().IsValid() || prim.Addr().IsUnspecified() || alt.Addr() == prim.Addr() || alt.Port() == prim.Port() {
		return nil, fmt.Errorf("alt_listen %s: needs listen on a specific IP and another IP and port than it (listen is %s): RFC 5780 answers name the address they come from", alt, prim)
	}
	s.addrs[altPort] = netip.AddrPortFrom(prim.Addr(), alt.Port())
	s.addrs[altIP] = netip.AddrPortFrom(alt.Addr(), prim.Port())
	s.addrs[altIP|altPort] = alt
	listen := cfg.ListenPacket
	if listen == nil {
		listen = net.ListenPacket
	}
	for i := 1; i < 4; i++ {
		c, err := listen("udp", s.addrs[i].String())
		if err != nil {
			s.close()
			return nil, fmt.Errorf("listen udp %s for STUN behaviour discovery: %w", s.addrs[i], err)
		}
		s.socks[i] = c
	}
	s.alt = true
	return s, nil
}

func (s *stunServer) close() {
	s.delayed.stop()
	for _, c := range s.socks[1:] {
		if c != nil {
			c.Close()
		}
	}
}

// serveAlt reads the alternate sockets until they close; they carry STUN
// only.
func (s *stunServer) serveAlt(ctx context.Context, wg *sync.WaitGroup) {
	for i := 1; i < 4; i++ {
		if s.socks[i] == nil {
			continue
		}
		wg.Go(func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := s.socks[i].ReadFrom(buf)
				if err != nil {
					if isClosed(err) || ctx.Err() != nil {
						return
					}
					continue
				}
				if ap, err := addrPort(from); err == nil && stun.Is(buf[:n]) {
					s.handle(buf[:n], netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), i)
				}
			}
		})
	}
}

// handle answers one request received on socket at from.
func (s *stunServer) handle(b []byte, from netip.AddrPort, at int) {
	m, err := stun.Parse(b)
	if err != nil || m.Type != stun.TypeBindingRequest {
		s.dropped.Add(1) // responses, indications, garbage: never answered
		return
	}
	if !s.allow(from.Addr(), time.Now()) {
		s.dropped.Add(1)
		return
	}
	s.requests.Add(1)
	resp := stun.Message{Type: stun.TypeBindingSuccess, TxID: m.TxID, Fingerprint: true}
	out := at
	if unknown := unknownRequired(m); len(unknown) > 0 {
		resp.Type = stun.TypeBindingError
		resp.AddErrorCode(stun.ErrorCode{Code: stun.CodeUnknownAttribute, Reason: "Unknown Attribute"})
		s.send(stun.Append(nil, resp), from, out)
		return
	}
	resp.AddXORMappedAddress(from)
	if change, err := m.ChangeRequest(); err == nil && change != 0 {
		if !s.alt {
			// RFC 5780 §6.1: a server without an alternate address
			// answers a CHANGE-REQUEST with 420.
			resp = stun.Message{Type: stun.TypeBindingError, TxID: m.TxID, Fingerprint: true}
			resp.AddErrorCode(stun.ErrorCode{Code: stun.CodeUnknownAttribute, Reason: "Unknown Attribute"})
			s.send(stun.Append(nil, resp), from, out)
			return
		}
		if change&stun.ChangeIP != 0 {
			out ^= altIP
		}
		if change&stun.ChangePort != 0 {
			out ^= altPort
		}
	}
	if s.alt {
		resp.AddResponseOrigin(s.addrs[out])
		resp.AddOtherAddress(s.addrs[at^(altIP|altPort)])
	}
	delay, ok := delayOf(m)
	switch {
	case !ok:
		resp = stun.Message{Type: stun.TypeBindingError, TxID: m.TxID, Fingerprint: true}
		resp.AddErrorCode(stun.ErrorCode{Code: stun.CodeBadRequest, Reason: "Delay Out Of Range"})
		s.send(stun.Append(nil, resp), from, at)
	case delay > 0:
		// The answer is built now, the same as an immediate one; out is
		// the socket the request came to unless CHANGE-REQUEST asked
		// for another, as for an immediate answer.
		if !s.delayed.schedule(delay, stun.Append(nil, resp), from, func(b []byte, to netip.AddrPort) { s.send(b, to, out) }) {
			resp = stun.Message{Type: stun.TypeBindingError, TxID: m.TxID, Fingerprint: true}
			resp.AddErrorCode(stun.ErrorCode{Code: stun.CodeInsufficientCapacity, Reason: "Too Many Delayed"})
			s.send(stun.Append(nil, resp), from, at)
		}
	default:
		s.send(stun.Append(nil, resp), from, out)
	}
}

// unknownRequired lists comprehension-required attributes the server does
// not handle (RFC 8489 §6.3.1: answered with 420). RESPONSE-PORT is one on
// purpose: answers go to the request's source only.
func unknownRequired(m stun.Message) []stun.AttrType {
	var u []stun.AttrType
	for _, a := range m.Attrs {
		switch a.Type {
		case stun.AttrChangeRequest, stun.AttrPadding:
		default:
			if a.Type.Required() {
				u = append(u, a.Type)
			}
		}
	}
	return u
}

func (s *stunServer) send(b []byte, to netip.AddrPort, from int) {
	if from == 0 {
		s.r.sendUDP(b, to)
		return
	}
	s.socks[from].WriteTo(b, net.UDPAddrFromAddrPort(to))
}

func (s *stunServer) allow(ip netip.Addr, now time.Time) bool {
	return s.limit.allow(ip, now, stunRate, stunBurst)
}

// sweep forgets idle sources.
func (s *stunServer) sweep(now time.Time) { s.limit.sweep(now, stunRate, stunBurst) }
