package portmap

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// NAT-PMP (RFC 6886) and PCP (RFC 6887) share the gateway's UDP port
// 5351 and a request/response exchange with retransmissions; a PCP
// server also answers NAT-PMP's version 0 (RFC 6887 §9 and Appendix A).

// Wire constants.
const (
	pmpVersion    = 0    // RFC 6886 §3.2
	pcpVersion    = 2    // RFC 6887 §7
	opAddress     = 0    // NAT-PMP: external address request
	opMapUDP      = 1    // NAT-PMP: map UDP; PCP: MAP
	opReply       = 128  // the response bit on an opcode (both)
	protoUDP      = 17   // IANA protocol number, PCP MAP §11.1
	pcpHeaderLen  = 24   // RFC 6887 §7.1, §7.2
	pcpMapLen     = 36   // RFC 6887 §11.1
	pmpMaxAnswer  = 1100 // RFC 6887 §7: a PCP message is at most 1100 bytes
	pmpAddrAnswer = 12   // RFC 6886 §3.2
	pmpMapAnswer  = 16   // RFC 6886 §3.3
)

// Result codes in words (RFC 6886 §3.5, RFC 6887 §7.4), by code.
var pmpResults = [...]string{1: "unsupported version", 2: "not authorized", 3: "network failure", 4: "out of resources", 5: "unsupported opcode"}
var pcpResults = [...]string{1: "unsupported version", 2: "not authorized", 3: "malformed request", 4: "unsupported opcode",
	5: "unsupported option", 6: "malformed option", 7: "network failure", 8: "no resources", 9: "unsupported protocol",
	10: "user exceeded quota", 11: "cannot provide external", 12: "address mismatch", 13: "excessive remote peers"}

// resultText is codes[code], or "" for a code it does not name.
func resultText(codes []string, code int) string {
	if code < 0 || code >= len(codes) {
		return ""
	}
	return codes[code]
}

// errNATPMP: the PCP request was answered in NAT-PMP's version 0.
var errNATPMP = errors.New("gateway speaks nat-pmp, not pcp")

// pmpState is what NAT-PMP and PCP keep between requests.
type pmpState struct {
	nonce   [12]byte   // PCP mapping nonce (RFC 6887 §11.1); zero: not chosen
	ext     netip.Addr // NAT-PMP external address
	epoch   uint32     // the gateway's last epoch (seconds since its state began)
	epochAt time.Time  // when it was received (zero: none yet)
}

// restarted checks a new epoch against the last one (RFC 6886 §3.6, RFC
// 6887 §8.5): the gateway's clock must advance at least 7/8 as fast as
// ours, less 2 s of slack, or it lost its mappings.
func (s *pmpState) restarted(epoch uint32, now time.Time) bool {
	lost := false
	if !s.epochAt.IsZero() {
		elapsed := int64(now.Sub(s.epochAt) / time.Second) // integers: soft-float MIPS
		lost = epoch < s.epoch || int64(epoch-s.epoch)+2 < elapsed*7/8
	}
	s.epoch, s.epochAt = epoch, now
	return lost
}

// exchange sends req to the gateway's port 5351 and retransmits until
// parse accepts an answer (ok) or fails it (err), or pmpWait passes.
// Answers that parse rejects as not ours (ok false, err nil) are counted
// and waited past. The socket is connected, so the kernel drops
// datagrams from any other address.
func (c *Client) exchange(ctx context.Context, req []byte, parse func([]byte) (bool, error)) error {
	to := netip.AddrPortFrom(c.gw, c.cfg.PMPPort)
	u, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.cfg.Local, 0)), net.UDPAddrFromAddrPort(to))
	if err != nil {
		return fmt.Errorf("open socket to %s: %w", to, err)
	}
	defer u.Close()
	stop := context.AfterFunc(ctx, func() { u.SetReadDeadline(time.Now()) })
	defer stop()
	end := deadline(ctx, pmpWait)
	buf := make([]byte, pmpMaxAnswer+1)
	bad := 0
	for wait := firstRetransmit; ; wait *= 2 {
		if _, err := u.Write(req); err != nil {
			return fmt.Errorf("send to %s: %w", to, err)
		}
		next := time.Now().Add(wait)
		if next.After(end) {
			next = end
		}
		u.SetReadDeadline(next)
		for {
			n, err := u.Read(buf)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				// ECONNREFUSED: an ICMP port unreachable, nothing
				// listens there.
				return fmt.Errorf("no nat-pmp/pcp at %s: %w", to, err)
			}
			ok, err := parse(buf[:n])
			if err != nil || ok {
				return err
			}
			bad++
			c.Malformed.Add(1)
		}
		if !time.Now().Before(end) {
			if bad > 0 {
				return fmt.Errorf("no valid answer from %s (%d malformed)", to, bad)
			}
			return fmt.Errorf("no answer from %s", to)
		}
	}
}

// pcpMap sends a PCP MAP request for the agent's UDP port (lifetime 0
// deletes it, RFC 6887 §15).
func (c *Client) pcpMap(ctx context.Context, lifetime time.Duration) (Mapping, error) {
	if c.pmp.nonce == ([12]byte{}) {
		rand.Read(c.pmp.nonce[:])
	}
	req := appendPCPMap(nil, c.cfg.Local, c.pmp.nonce, c.cfg.Port, c.port, uint32(lifetime/time.Second))
	var m Mapping
	err := c.exchange(ctx, req, func(b []byte) (bool, error) {
		r, err := parsePCPMap(b)
		switch {
		case errors.Is(err, errNATPMP):
			return true, err
		case err != nil:
			return false, nil
		case r.result != 0 && (!r.hasData || r.nonce == c.pmp.nonce):
			return true, &GatewayError{Proto: PCP, Code: r.result, Text: resultText(pcpResults[:], r.result)}
		case r.nonce != c.pmp.nonce || r.internal != c.cfg.Port:
			return false, nil
		case lifetime == 0:
			return true, nil
		case r.external.Port() == 0 || !r.external.Addr().Is4() || r.lifetime == 0:
			return false, nil
		}
		m = Mapping{Proto: PCP, External: r.external, Lifetime: time.Duration(r.lifetime) * time.Second,
			Restarted: c.pmp.restarted(r.epoch, time.Now())}
		return true, nil
	})
	if err == nil && lifetime > 0 {
		c.port = m.External.Port()
	}
	return m, err
}

// pcpAnswer is the part of a PCP MAP response the client checks.
type pcpAnswer struct {
	result   int
	hasData  bool // the opcode data is present (an error answer may omit it)
	lifetime uint32
	epoch    uint32
	nonce    [12]byte
	internal uint16
	external netip.AddrPort
}

// appendPCPMap appends a PCP MAP request (RFC 6887 §7.1, §11.1): the
// client's address, a nonce, UDP, the internal port and the suggested
// external port on any IPv4 address (::ffff:0.0.0.0).
func appendPCPMap(b []byte, client netip.Addr, nonce [12]byte, internal, suggested uint16, lifetime uint32) []byte {
	var m [pcpHeaderLen + pcpMapLen]byte
	m[0], m[1] = pcpVersion, opMapUDP
	binary.BigEndian.PutUint32(m[4:], lifetime)
	ip := client.As16() // an IPv4 client as IPv4-mapped IPv6 (RFC 6887 §5)
	copy(m[8:], ip[:])
	copy(m[24:], nonce[:])
	m[36] = protoUDP
	binary.BigEndian.PutUint16(m[40:], internal)
	binary.BigEndian.PutUint16(m[42:], suggested)
	m[54], m[55] = 0xff, 0xff // suggested external address ::ffff:0.0.0.0: any IPv4
	return append(b, m[:]...)
}

// parsePCPMap reads a PCP MAP response (RFC 6887 §7.2, §11.1). A version
// 0 answer is a NAT-PMP gateway's "unsupported version" (errNATPMP). An
// error response may omit the opcode data; a success must carry it.
func parsePCPMap(b []byte) (pcpAnswer, error) {
	var r pcpAnswer
	if len(b) >= 2 && b[0] == pmpVersion {
		return r, errNATPMP
	}
	if len(b) < pcpHeaderLen || len(b) > pmpMaxAnswer || b[0] != pcpVersion || b[1] != opReply|opMapUDP {
		return r, errMalformed
	}
	r.result = int(b[3])
	r.lifetime = binary.BigEndian.Uint32(b[4:])
	r.epoch = binary.BigEndian.Uint32(b[8:])
	if len(b) < pcpHeaderLen+pcpMapLen {
		if r.result == 0 {
			return r, errMalformed
		}
		return r, nil
	}
	p := b[pcpHeaderLen:]
	r.hasData = true
	copy(r.nonce[:], p)
	if p[12] != protoUDP {
		return r, errMalformed
	}
	r.internal = binary.BigEndian.Uint16(p[16:])
	ip := netip.AddrFrom16([16]byte(p[20:36])).Unmap()
	r.external = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(p[18:]))
	return r, nil
}

var errMalformed = errors.New("malformed answer")
