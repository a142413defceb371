package portmap

import (
	"context"
	"encoding/binary"
	"net/netip"
	"time"
)

// natpmpMap maps the agent's UDP port with NAT-PMP (RFC 6886 §3.3): the
// external address first (§3.2; a mapping answer carries only the port),
// then the mapping. Lifetime 0 deletes it (§3.4).
func (c *Client) natpmpMap(ctx context.Context, lifetime time.Duration) (Mapping, error) {
	restarted := false
	if lifetime > 0 {
		err := c.exchange(ctx, []byte{pmpVersion, opAddress}, func(b []byte) (bool, error) {
			r, err := parsePMP(b, opAddress)
			if err != nil {
				return false, nil
			}
			if r.result != 0 {
				return true, &GatewayError{Proto: NATPMP, Code: r.result, Text: resultText(pmpResults[:], r.result)}
			}
			if !r.ext.IsValid() || r.ext.IsUnspecified() {
				return false, nil
			}
			c.pmp.ext = r.ext
			restarted = c.pmp.restarted(r.epoch, time.Now()) || restarted
			return true, nil
		})
		if err != nil {
			return Mapping{}, err
		}
	}
	suggested := c.port
	if lifetime == 0 {
		suggested = 0 // §3.4: delete with external port 0
	}
	req := appendPMPMap(nil, c.cfg.Port, suggested, uint32(lifetime/time.Second))
	var m Mapping
	err := c.exchange(ctx, req, func(b []byte) (bool, error) {
		r, err := parsePMP(b, opMapUDP)
		switch {
		case err != nil, r.result == 0 && r.internal != c.cfg.Port:
			return false, nil
		case r.result != 0:
			return true, &GatewayError{Proto: NATPMP, Code: r.result, Text: resultText(pmpResults[:], r.result)}
		case lifetime == 0:
			return true, nil
		case r.external == 0 || r.lifetime == 0:
			return false, nil
		}
		restarted = c.pmp.restarted(r.epoch, time.Now()) || restarted
		m = Mapping{Proto: NATPMP, External: netip.AddrPortFrom(c.pmp.ext, r.external),
			Lifetime: time.Duration(r.lifetime) * time.Second, Restarted: restarted}
		return true, nil
	})
	if err == nil && lifetime > 0 {
		c.port = m.External.Port()
	}
	return m, err
}

// appendPMPMap appends a NAT-PMP UDP mapping request (RFC 6886 §3.3).
func appendPMPMap(b []byte, internal, suggested uint16, lifetime uint32) []byte {
	b = append(b, pmpVersion, opMapUDP, 0, 0)
	b = binary.BigEndian.AppendUint16(b, internal)
	b = binary.BigEndian.AppendUint16(b, suggested)
	return binary.BigEndian.AppendUint32(b, lifetime)
}

// pmpAnswer is a NAT-PMP response.
type pmpAnswer struct {
	result             int
	epoch              uint32
	ext                netip.Addr // address answers
	internal, external uint16     // mapping answers
	lifetime           uint32
}

// parsePMP reads a NAT-PMP response to op (RFC 6886 §3.2, §3.3): version
// 0, the opcode plus 128, then the result code and the epoch. An error
// answer is taken from its first 8 bytes (§3.5 leaves the rest undefined).
func parsePMP(b []byte, op byte) (pmpAnswer, error) {
	var r pmpAnswer
	if len(b) < 8 || b[0] != pmpVersion || b[1] != opReply|op {
		return r, errMalformed
	}
	r.result = int(binary.BigEndian.Uint16(b[2:]))
	r.epoch = binary.BigEndian.Uint32(b[4:])
	if r.result != 0 {
		return r, nil
	}
	switch {
	case op == opAddress && len(b) >= pmpAddrAnswer:
		r.ext = netip.AddrFrom4([4]byte(b[8:12]))
	case op == opMapUDP && len(b) >= pmpMapAnswer:
		r.internal = binary.BigEndian.Uint16(b[8:])
		r.external = binary.BigEndian.Uint16(b[10:])
		r.lifetime = binary.BigEndian.Uint32(b[12:])
	default:
		return r, errMalformed
	}
	return r, nil
}
