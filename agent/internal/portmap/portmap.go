// Package portmap asks the LAN's gateway to forward a public port to the
// agent's UDP socket, with whichever of three protocols the gateway
// speaks: PCP MAP (RFC 6887), NAT-PMP (RFC 6886) and UPnP IGD (SSDP
// discovery, then SOAP AddPortMapping on the WANIPConnection or
// WANPPPConnection service). A mapped port is a candidate address that
// works even behind NATs that filter unsolicited traffic, so peers and
// the relay can reach the agent directly.
//
// Why our own small client: a general UPnP library (goupnp) adds about
// 3.2 MiB to the mipsle binary, net/http and encoding/xml hundreds of KiB
// more; the agent needs four SOAP actions and one description document.
// So HTTP is a bounded HTTP/1.1 exchange over net.Conn (http.go) and the
// XML is read by a bounded tag scanner (xml.go).
//
// Everything the gateway sends is untrusted: every answer is size-capped
// and time-bounded, replies are taken only from the gateway's own address
// (SSDP answers, description and control URLs naming another host are
// ignored, so a LAN peer cannot steer the agent to a third address), and
// a malformed answer is dropped and counted, never a panic or a hang.
package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// Proto is the protocol that granted a mapping.
type Proto uint8

const (
	None   Proto = iota
	UPnP         // UPnP IGD:1/IGD:2 WANIPConnection or WANPPPConnection
	NATPMP       // RFC 6886
	PCP          // RFC 6887, MAP opcode
)

// String is the name `pinhole nat` and `pinhole status` print.
func (p Proto) String() string {
	switch p {
	case UPnP:
		return "upnp-igd"
	case NATPMP:
		return "nat-pmp"
	case PCP:
		return "pcp"
	}
	return "none"
}

// Mapping is a port the gateway forwards to the agent.
type Mapping struct {
	Proto    Proto
	External netip.AddrPort // the public address and port peers send to
	// Lifetime is what the gateway granted; 0 for a UPnP permanent lease
	// (a gateway that only supports those, error 725).
	Lifetime time.Duration
	// Restarted: since the previous answer the gateway lost its state
	// (the NAT-PMP/PCP epoch went backwards, RFC 6886 §3.6, RFC 6887
	// §8.5) or the renewal failed, and this mapping was requested anew.
	Restarted bool
}

// Config says what to map and where to ask.
type Config struct {
	// Port is the agent's UDP port (the internal port of the mapping).
	Port uint16
	// Gateway is the router to ask (zero: the default gateway of
	// /proc/net/route). Local is this host's address toward it (zero:
	// the kernel's choice).
	Gateway, Local netip.Addr
	// Lifetime is the lease asked for (zero: DefaultLifetime).
	Lifetime time.Duration
	// PMPPort is the gateway's NAT-PMP/PCP port and SSDP where M-SEARCH
	// goes; zero values are the standard ones (5351, 239.255.255.250:1900).
	// Tests point them at fake gateways on loopback.
	PMPPort uint16
	SSDP    netip.AddrPort
	// RouteFile is /proc/net/route unless set (tests).
	RouteFile string
}

// Protocol constants.
const (
	pmpPort = 5351 // RFC 6886 §3.1, RFC 6887 §19.1
	// DefaultLifetime is the lease asked for. RFC 6886 §3.3 recommends
	// 7200 s; a shorter one bounds how long a crashed agent's mapping
	// outlives it, and renewing at half of it is a few small LAN packets.
	DefaultLifetime = 20 * time.Minute
)

var ssdpGroup = netip.MustParseAddrPort("239.255.255.250:1900") // UPnP Device Architecture 1.1 §1.1.2

// Timing of one attempt, all on the LAN (round trips of milliseconds).
const (
	// firstRetransmit doubles per retry (RFC 6886 §3.1 starts at 250 ms;
	// RFC 6887 §8.1.1 allows a shorter start on a known LAN);
	// pmpWait bounds a NAT-PMP/PCP transaction: 250+500+1000 ms.
	firstRetransmit = 250 * time.Millisecond
	pmpWait         = 1750 * time.Millisecond
	// ssdpWait bounds SSDP discovery (M-SEARCH MX is 1 s); httpWait each
	// HTTP exchange with the IGD.
	ssdpWait = 2 * time.Second
	httpWait = 3 * time.Second
)

// Errors callers tell apart.
var (
	ErrNoGateway = errors.New("no default gateway")
	ErrNoMapping = errors.New("gateway offers no port mapping (no PCP, NAT-PMP or UPnP IGD answer)")
)

// GatewayError is a refusal from the gateway: a PCP or NAT-PMP result
// code, or a UPnP SOAP error code.
type GatewayError struct {
	Proto Proto
	Code  int
	Text  string
}

func (e *GatewayError) Error() string {
	return fmt.Sprintf("%s: gateway refused: %d (%s)", e.Proto, e.Code, e.Text)
}

// Client holds one mapping at a time. Map and Unmap must not be called
// concurrently; Malformed may be read at any time.
type Client struct {
	cfg Config
	gw  netip.Addr // resolved gateway
	cur Mapping    // zero Proto: none

	pmp  pmpState // NAT-PMP/PCP: nonce and epoch
	igd  *igd     // UPnP: the service found by discovery
	port uint16   // the external port asked for (UPnP may pick another)

	// Malformed counts answers dropped as malformed, from the wrong
	// source or for another request.
	Malformed atomic.Uint64
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.PMPPort == 0 {
		cfg.PMPPort = pmpPort
	}
	if !cfg.SSDP.IsValid() {
		cfg.SSDP = ssdpGroup
	}
	return &Client{cfg: cfg, port: cfg.Port}
}

// Current returns the mapping held now (zero Proto: none).
func (c *Client) Current() Mapping { return c.cur }

// Map requests the mapping, or renews the one held. A renewal that fails
// starts over with discovery, so a gateway that restarted or was
// replaced is asked again at once.
func (c *Client) Map(ctx context.Context) (Mapping, error) {
	if c.cur.Proto != None {
		m, err := c.renew(ctx)
		if err == nil {
			c.cur = m
			return m, nil
		}
		if ctx.Err() != nil {
			return Mapping{}, err
		}
		c.cur = Mapping{}
		m, err2 := c.discover(ctx)
		if err2 != nil {
			return Mapping{}, fmt.Errorf("renew: %v; again: %w", err, err2)
		}
		m.Restarted = true
		c.cur = m
		return m, nil
	}
	m, err := c.discover(ctx)
	if err == nil {
		c.cur = m
	}
	return m, err
}

func (c *Client) renew(ctx context.Context) (Mapping, error) {
	switch c.cur.Proto {
	case PCP:
		return c.pcpMap(ctx, c.cfg.Lifetime)
	case NATPMP:
		return c.natpmpMap(ctx, c.cfg.Lifetime)
	}
	return c.upnpMap(ctx)
}

// discover finds the gateway and what it speaks: PCP first (a NAT-PMP
// gateway answers it with version 0, RFC 6887 §9, and NAT-PMP follows at
// once), UPnP discovery meanwhile, so a gateway with neither costs one
// wait, not three.
func (c *Client) discover(ctx context.Context) (Mapping, error) {
	gw := c.cfg.Gateway
	if !gw.IsValid() {
		var err error
		if gw, err = DefaultGateway(c.cfg.RouteFile); err != nil {
			return Mapping{}, err
		}
	}
	c.gw = gw
	if !c.cfg.Local.IsValid() {
		local, err := localToward(gw)
		if err != nil {
			return Mapping{}, err
		}
		c.cfg.Local = local
	}
	c.pmp = pmpState{}
	c.igd = nil
	type found struct {
		g   *igd
		err error
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ssdp := make(chan found, 1)
	go func() {
		g, err := c.findIGD(sctx)
		ssdp <- found{g, err}
	}()
	m, perr := c.pcpMap(ctx, c.cfg.Lifetime)
	if errors.Is(perr, errNATPMP) {
		m, perr = c.natpmpMap(ctx, c.cfg.Lifetime)
	}
	if perr == nil {
		cancel()
		<-ssdp // the search stops at once; wait for it
		return m, nil
	}
	f := <-ssdp
	if f.err != nil {
		if ctx.Err() != nil {
			return Mapping{}, ctx.Err()
		}
		if _, refused := perr.(*GatewayError); refused {
			return Mapping{}, fmt.Errorf("%w; upnp: %v", perr, f.err)
		}
		return Mapping{}, fmt.Errorf("%w (pcp/nat-pmp: %v; upnp: %v)", ErrNoMapping, perr, f.err)
	}
	c.igd = f.g
	return c.upnpMap(ctx)
}

// Unmap deletes the mapping held, if any.
func (c *Client) Unmap(ctx context.Context) error {
	cur := c.cur
	c.cur = Mapping{}
	var err error
	switch cur.Proto {
	case PCP:
		_, err = c.pcpMap(ctx, 0)
	case NATPMP:
		_, err = c.natpmpMap(ctx, 0)
	case UPnP:
		err = c.upnpUnmap(ctx, cur.External.Port())
	}
	return err
}

// localToward returns the address this host uses toward gw; connecting a
// UDP socket sends nothing.
func localToward(gw netip.Addr) (netip.Addr, error) {
	u, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, pmpPort)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route to gateway %s: %w", gw, err)
	}
	defer u.Close()
	return u.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// deadline is ctx's deadline or now+d, whichever is sooner.
func deadline(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}
