package portmap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fake gateways on loopback: a NAT-PMP/PCP server and an IGD (SSDP on
// UDP, description and SOAP over TCP). Each keeps the mappings it
// granted, so tests check what the gateway holds, not what the client
// believes.

var loop = netip.MustParseAddr("127.0.0.1")

// fakePMP answers on 127.0.0.1:port. With pcp it speaks PCP (and NAT-PMP,
// as RFC 6887 Appendix A allows); without, NAT-PMP only and answers a
// PCP request with version 0 "unsupported version". reply, if set,
// replaces the answer to each request (nil: no answer).
type fakePMP struct {
	conn *net.UDPConn
	pcp  bool
	ext  netip.Addr

	mu      sync.Mutex
	start   time.Time         // the epoch's start (a restart resets it)
	maps    map[uint16]uint32 // internal port -> lifetime
	reqs    int
	pcpReqs int // requests in PCP's version
	reply   func(req []byte) [][]byte
	lastReq []byte
}

func newFakePMP(t *testing.T, pcp bool) *fakePMP {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePMP{conn: c, pcp: pcp, ext: netip.MustParseAddr("198.51.100.7"), start: time.Now().Add(-time.Hour), maps: map[uint16]uint32{}}
	t.Cleanup(func() { c.Close() })
	go f.serve()
	return f
}

func (f *fakePMP) port() uint16 { return uint16(f.conn.LocalAddr().(*net.UDPAddr).Port) }

// restart forgets every mapping and starts a new epoch.
func (f *fakePMP) restart() {
	f.mu.Lock()
	f.start, f.maps = time.Now(), map[uint16]uint32{}
	f.mu.Unlock()
}

func (f *fakePMP) setReply(r func([]byte) [][]byte) {
	f.mu.Lock()
	f.reply = r
	f.mu.Unlock()
}

func (f *fakePMP) last() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReq
}

func (f *fakePMP) mapped(internal uint16) (uint32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.maps[internal]
	return l, ok
}

func (f *fakePMP) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		req := append([]byte(nil), buf[:n]...)
		f.mu.Lock()
		f.reqs++
		if n > 0 && req[0] == pcpVersion {
			f.pcpReqs++
		}
		f.lastReq = req
		reply := f.reply
		f.mu.Unlock()
		var out [][]byte
		if reply != nil {
			out = reply(req)
		} else {
			out = [][]byte{f.answer(req)}
		}
		for _, b := range out {
			if b != nil {
				f.conn.WriteToUDPAddrPort(b, from)
			}
		}
	}
}

func (f *fakePMP) answer(req []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	epoch := uint32(time.Since(f.start).Seconds())
	ext := f.ext.As4()
	switch {
	case len(req) >= 60 && req[0] == pcpVersion && f.pcp:
		b := append([]byte(nil), req[:60]...)
		b[1] |= opReply
		b[2], b[3] = 0, 0
		lifetime := binary.BigEndian.Uint32(req[4:])
		internal := binary.BigEndian.Uint16(req[40:])
		binary.BigEndian.PutUint32(b[8:], epoch)
		clear(b[12:24])
		if lifetime == 0 {
			delete(f.maps, internal)
		} else {
			f.maps[internal] = lifetime
			binary.BigEndian.PutUint16(b[42:], internal+1000)
			a := netip.AddrFrom4(ext).As16()
			copy(b[44:], a[:])
		}
		return b
	case len(req) >= 2 && req[0] != pmpVersion: // RFC 6886 §3.5
		b := []byte{0, opReply | req[1], 0, 1, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[4:], epoch)
		return b
	case len(req) == 2 && req[1] == opAddress:
		b := []byte{0, opReply | opAddress, 0, 0, 0, 0, 0, 0, ext[0], ext[1], ext[2], ext[3]}
		binary.BigEndian.PutUint32(b[4:], epoch)
		return b
	case len(req) == 12 && req[1] == opMapUDP:
		internal := binary.BigEndian.Uint16(req[4:])
		lifetime := binary.BigEndian.Uint32(req[8:])
		b := make([]byte, 16)
		b[1] = opReply | opMapUDP
		binary.BigEndian.PutUint32(b[4:], epoch)
		binary.BigEndian.PutUint16(b[8:], internal)
		if lifetime == 0 {
			delete(f.maps, internal)
		} else {
			f.maps[internal] = lifetime
			binary.BigEndian.PutUint16(b[10:], internal+2000)
			binary.BigEndian.PutUint32(b[12:], lifetime)
		}
		return b
	}
	return nil
}

// fakeIGD is an SSDP responder and an HTTP server with a description at
// /desc.xml and a WANIPConnection:1 control URL at /ctl. handle, if set,
// answers a request first (raw response bytes; "" falls through).
type fakeIGD struct {
	ssdp *net.UDPConn
	ln   net.Listener
	ext  string

	mu       sync.Mutex
	location string            // what SSDP answers send (default: our description)
	maps     map[string]string // external port -> "client:port lease"
	actions  []string
	handle   func(method, path, body string) string
	conflict map[string]bool // external ports another host holds
	permOnly bool            // refuses leases other than 0 (725)
	accepted int
}

// newFakeIGD starts the fake after set has adjusted it.
func newFakeIGD(t *testing.T, set ...func(*fakeIGD)) *fakeIGD {
	s, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIGD{ssdp: s, ln: ln, ext: "198.51.100.9", maps: map[string]string{}, conflict: map[string]bool{}}
	f.location = "http://" + ln.Addr().String() + "/desc.xml"
	t.Cleanup(func() { s.Close(); ln.Close() })
	for _, fn := range set {
		fn(f)
	}
	go f.serveSSDP()
	go f.serveHTTP()
	return f
}

func (f *fakeIGD) ssdpAddr() netip.AddrPort { return f.ssdp.LocalAddr().(*net.UDPAddr).AddrPort() }

func (f *fakeIGD) serveSSDP() {
	buf := make([]byte, 2048)
	for {
		n, from, err := f.ssdp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if !strings.HasPrefix(string(buf[:n]), "M-SEARCH * HTTP/1.1\r\n") {
			continue
		}
		f.mu.Lock()
		loc := f.location
		f.mu.Unlock()
		f.ssdp.WriteToUDPAddrPort([]byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: "+loc+"\r\n\r\n"), from)
	}
}

func (f *fakeIGD) serveHTTP() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.accepted++
		f.mu.Unlock()
		go f.serveConn(c)
	}
}

const fakeDesc = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/l3f</controlURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><deviceList><device>
<serviceList><service>
 <serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
 <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
 <controlURL>/ctl</controlURL><eventSubURL>/evt</eventSubURL><SCPDURL>/scpd.xml</SCPDURL>
</service></serviceList></device></deviceList></device></deviceList></device></root>`

func (f *fakeIGD) serveConn(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	method, rest, _ := strings.Cut(line, " ")
	path, _, _ := strings.Cut(rest, " ")
	length := 0
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if h == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "content-length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return
	}
	f.mu.Lock()
	handle := f.handle
	f.mu.Unlock()
	if handle != nil {
		if out := handle(method, path, string(body)); out != "" {
			c.Write([]byte(out))
			return
		}
	}
	c.Write([]byte(f.respond(method, path, string(body))))
}

func httpOK(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func soapFault(code int, desc string) string {
	body := fmt.Sprintf(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, desc)
	return fmt.Sprintf("HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func (f *fakeIGD) respond(method, path, body string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if method == "GET" && path == "/desc.xml" {
		return httpOK(fakeDesc)
	}
	if method != "POST" || path != "/ctl" {
		return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	}
	arg := func(n string) string { v, _ := text(body, n); return v }
	switch {
	case strings.Contains(body, "<u:GetExternalIPAddress "):
		f.actions = append(f.actions, "GetExternalIPAddress")
		return httpOK(`<s:Envelope><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalIPAddress>` + f.ext + `</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>`)
	case strings.Contains(body, "<u:AddPortMapping "):
		port, lease := arg("NewExternalPort"), arg("NewLeaseDuration")
		f.actions = append(f.actions, "AddPortMapping "+port+" "+lease)
		if f.conflict[port] {
			return soapFault(718, "ConflictInMappingEntry")
		}
		if f.permOnly && lease != "0" {
			return soapFault(725, "OnlyPermanentLeasesSupported")
		}
		f.maps[port] = arg("NewInternalClient") + ":" + arg("NewInternalPort") + " " + arg("NewProtocol") + " " + lease
		return httpOK(`<s:Envelope><s:Body><u:AddPortMappingResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"/></s:Body></s:Envelope>`)
	case strings.Contains(body, "<u:DeletePortMapping "):
		port := arg("NewExternalPort")
		f.actions = append(f.actions, "DeletePortMapping "+port)
		if _, ok := f.maps[port]; !ok {
			return soapFault(714, "NoSuchEntryInArray")
		}
		delete(f.maps, port)
		return httpOK(`<s:Envelope><s:Body><u:DeletePortMappingResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"/></s:Body></s:Envelope>`)
	}
	return soapFault(401, "Invalid Action")
}

func (f *fakeIGD) mappings() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]string{}
	for k, v := range f.maps {
		m[k] = v
	}
	return m
}

// silentPMP is a NAT-PMP/PCP port where nothing answers: a bound socket
// that never replies (no ICMP either, as behind a firewall).
func silentPMP(t *testing.T) uint16 {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// silentSSDP likewise for SSDP.
func silentSSDP(t *testing.T) netip.AddrPort {
	return netip.AddrPortFrom(loop, silentPMP(t))
}
