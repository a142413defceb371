package portmap

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// UPnP IGD (UPnP Device Architecture 1.1; IGD:1 and IGD:2 WANIPConnection,
// WANPPPConnection:1): SSDP M-SEARCH finds the gateway's description URL,
// the description names the connection service's control URL, and SOAP
// actions on it read the external address and add or delete the mapping.

// igd is a connection service found on the gateway.
type igd struct {
	control httpURL
	service string // its serviceType URN, also the SOAP namespace
}

// services are the connection services, most preferred first.
var services = []string{
	"urn:schemas-upnp-org:service:WANIPConnection:2",
	"urn:schemas-upnp-org:service:WANIPConnection:1",
	"urn:schemas-upnp-org:service:WANPPPConnection:1",
}

// UPnP error codes the client acts on (IGD:2 WANIPConnection §2.4.16).
const (
	upnpConflict      = 718 // ConflictInMappingEntry: the port is taken
	upnpOnlyPermanent = 725 // OnlyPermanentLeasesSupported
	conflictRetries   = 3   // other external ports tried after a conflict
)

// findIGD sends M-SEARCH for an InternetGatewayDevice and follows the
// first answer from the gateway itself to a connection service. Answers
// from other hosts, and LOCATION URLs naming another host, are skipped.
func (c *Client) findIGD(ctx context.Context) (*igd, error) {
	u, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.cfg.Local, 0)))
	if err != nil {
		return nil, fmt.Errorf("ssdp socket: %w", err)
	}
	defer u.Close()
	stop := context.AfterFunc(ctx, func() { u.SetReadDeadline(time.Now()) })
	defer stop()
	to := net.UDPAddrFromAddrPort(c.cfg.SSDP)
	for _, st := range []string{"urn:schemas-upnp-org:device:InternetGatewayDevice:1", "urn:schemas-upnp-org:device:InternetGatewayDevice:2"} {
		msg := "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: " + st + "\r\n\r\n"
		if _, err := u.WriteToUDP([]byte(msg), to); err != nil {
			return nil, fmt.Errorf("ssdp search: %w", err)
		}
	}
	u.SetReadDeadline(deadline(ctx, ssdpWait))
	buf := make([]byte, 2048)
	var last error
	tried := map[string]bool{}
	for {
		n, from, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if last != nil {
				return nil, last
			}
			return nil, errors.New("no ssdp answer from the gateway")
		}
		loc, ok := ssdpLocation(buf[:n])
		if from.Addr().Unmap() != c.gw || !ok {
			c.Malformed.Add(1)
			continue
		}
		if tried[loc] {
			continue // the answer to the second search
		}
		tried[loc] = true
		g, err := c.describe(ctx, loc)
		if err == nil {
			return g, nil
		}
		last = err
	}
}

// ssdpLocation returns the LOCATION of an M-SEARCH answer (an HTTP/1.1
// 200 response in one datagram).
func ssdpLocation(b []byte) (string, bool) {
	lines := strings.Split(string(b), "\n")
	if !strings.HasPrefix(lines[0], "HTTP/1.1 200") {
		return "", false
	}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "location") {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// describe fetches the device description at loc and picks the
// connection service; both URLs must name the gateway.
func (c *Client) describe(ctx context.Context, loc string) (*igd, error) {
	u, err := parseHTTPURL(loc)
	if err != nil {
		return nil, err
	}
	if u.addr.Addr() != c.gw {
		return nil, fmt.Errorf("description at %s: not the gateway %s", u, c.gw)
	}
	status, body, err := httpDo(ctx, u, "GET", "", nil)
	var g *igd
	switch {
	case err != nil:
	case status != 200:
		err = fmt.Errorf("http status %d", status)
	default:
		if g, err = pickService(string(body), u); err == nil && g.control.addr.Addr() != c.gw {
			err = fmt.Errorf("control url %s is not on the gateway", g.control)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("description %s: %w", u, err)
	}
	return g, nil
}

// pickService finds the most preferred connection service in a device
// description and resolves its control URL against the description's
// own (URLBase is deprecated since UDA 1.1; relative paths unseen).
func pickService(doc string, base httpURL) (*igd, error) {
	best, bestRank := (*igd)(nil), len(services)
	for i := 0; i < len(doc); {
		svc, next, ok := element(doc, "service", i)
		if !ok {
			break
		}
		i = next
		st, _ := text(svc, "serviceType")
		ctl, _ := text(svc, "controlURL")
		for rank, want := range services {
			if st == want && rank < bestRank && ctl != "" {
				u, err := base.resolve(ctl)
				if err != nil {
					continue
				}
				best, bestRank = &igd{control: u, service: st}, rank
			}
		}
	}
	if best == nil {
		return nil, errors.New("no WANIPConnection or WANPPPConnection service")
	}
	return best, nil
}

// soap calls action with args (name, value pairs) and returns the answer
// body; a SOAP fault becomes a GatewayError with its UPnP error code.
// The values are numbers, an IPv4 address and fixed words: nothing to
// escape.
func (c *Client) soap(ctx context.Context, action string, args ...string) (string, error) {
	g := c.igd
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>` + "\r\n" +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>`)
	b.WriteString(`<u:` + action + ` xmlns:u="` + g.service + `">`)
	for i := 0; i+1 < len(args); i += 2 {
		b.WriteString("<" + args[i] + ">" + args[i+1] + "</" + args[i] + ">")
	}
	b.WriteString("</u:" + action + "></s:Body></s:Envelope>\r\n")
	hdr := "Content-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: \"" + g.service + "#" + action + "\"\r\n"
	status, body, err := httpDo(ctx, g.control, "POST", hdr, []byte(b.String()))
	if err != nil {
		return "", fmt.Errorf("upnp %s: %w", action, err)
	}
	doc := string(body)
	if status != 200 {
		if code, ok := text(doc, "errorCode"); ok {
			n, _ := strconv.Atoi(code)
			desc, _ := text(doc, "errorDescription")
			return "", &GatewayError{Proto: UPnP, Code: n, Text: truncate(desc)}
		}
		return "", fmt.Errorf("upnp %s: http status %d", action, status)
	}
	return doc, nil
}

// upnpMap reads the external address and adds (or renews: the same
// request again) the mapping. A port taken by another host (718) makes
// it try a few random ones; a gateway that only keeps permanent leases
// (725) gets one, deleted at Unmap.
func (c *Client) upnpMap(ctx context.Context) (Mapping, error) {
	doc, err := c.soap(ctx, "GetExternalIPAddress")
	if err != nil {
		return Mapping{}, err
	}
	s, _ := text(doc, "NewExternalIPAddress")
	ext, err := netip.ParseAddr(s)
	if err != nil || !ext.Is4() || ext.IsUnspecified() {
		return Mapping{}, fmt.Errorf("upnp: gateway has no usable external address (%q)", truncate(s))
	}
	lease := c.cfg.Lifetime
	port := c.port
	for try := 0; ; try++ {
		_, err = c.soap(ctx, "AddPortMapping", "NewRemoteHost", "", "NewExternalPort", strconv.Itoa(int(port)),
			"NewProtocol", "UDP", "NewInternalPort", strconv.Itoa(int(c.cfg.Port)), "NewInternalClient", c.cfg.Local.String(),
			"NewEnabled", "1", "NewPortMappingDescription", "pinhole", "NewLeaseDuration", strconv.Itoa(int(lease/time.Second)))
		ge, _ := err.(*GatewayError)
		switch {
		case err == nil:
			c.port = port
			return Mapping{Proto: UPnP, External: netip.AddrPortFrom(ext, port), Lifetime: lease}, nil
		case ge != nil && ge.Code == upnpOnlyPermanent && lease != 0:
			lease = 0
		case ge != nil && ge.Code == upnpConflict && try < conflictRetries:
			port = uint16(1024 + rand.N(65535-1024))
		default:
			return Mapping{}, err
		}
	}
}

// upnpUnmap deletes the mapping of external port.
func (c *Client) upnpUnmap(ctx context.Context, port uint16) error {
	_, err := c.soap(ctx, "DeletePortMapping", "NewRemoteHost", "", "NewExternalPort", strconv.Itoa(int(port)), "NewProtocol", "UDP")
	return err
}
