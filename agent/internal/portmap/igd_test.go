package portmap

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// upnpClient is a client for a fake IGD with a silent NAT-PMP/PCP port.
func upnpClient(t *testing.T, igd *fakeIGD) *Client {
	return pmpClient(t, silentPMP(t), igd.ssdpAddr())
}

// TestUPnPMapRenewDelete: SSDP finds the IGD, the description names the
// WANIPConnection control URL, and the mapping is added for the agent's
// address and port, renewed with the same request, deleted at Unmap.
func TestUPnPMapRenewDelete(t *testing.T) {
	igd := newFakeIGD(t)
	c := upnpClient(t, igd)
	m, err := c.Map(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("198.51.100.9:40000"); m.Proto != UPnP || m.External != want || m.Lifetime != DefaultLifetime {
		t.Fatalf("got %+v, want upnp-igd %v", m, want)
	}
	if got, want := igd.mappings()["40000"], "127.0.0.1:40000 UDP 1200"; got != want {
		t.Fatalf("gateway holds %q, want %q", got, want)
	}
	if m, err = c.Map(testCtx(t)); err != nil || m.External.Port() != 40000 || m.Restarted {
		t.Fatalf("renew: %+v %v", m, err)
	}
	if err := c.Unmap(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if len(igd.mappings()) != 0 {
		t.Errorf("gateway still holds %v", igd.mappings())
	}
}

// TestUPnPConflictAndPermanent: a port held by another host (718) makes
// the client pick another; a gateway with permanent leases only (725)
// gets lease 0.
func TestUPnPConflictAndPermanent(t *testing.T) {
	igd := newFakeIGD(t, func(f *fakeIGD) { f.conflict["40000"], f.permOnly = true, true })
	c := upnpClient(t, igd)
	m, err := c.Map(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.External.Port() == 40000 || m.Lifetime != 0 {
		t.Errorf("got %+v, want another port, lifetime 0", m)
	}
	got := igd.mappings()[fmt.Sprint(m.External.Port())]
	if !strings.HasSuffix(got, " 0") {
		t.Errorf("gateway holds %q, want a permanent lease", got)
	}
}

// TestUPnPBadInput: garbage, oversized, slow or misdirecting answers end
// in an error within the bounded waits, and never in a connection to a
// third address.
func TestUPnPBadInput(t *testing.T) {
	huge := strings.Repeat("<x>", 40000)
	cases := []struct {
		name   string
		handle func(method, path, body string) string
		want   string
	}{
		{"garbage description", func(m, p, b string) string {
			if p == "/desc.xml" {
				return httpOK("<root><<<service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1<controlURL></service>\x00\xff</")
			}
			return ""
		}, "no WANIPConnection"},
		{"huge declared body", func(m, p, b string) string {
			if p == "/desc.xml" {
				return "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + huge
			}
			return ""
		}, "larger than"},
		{"huge body to eof", func(m, p, b string) string {
			if p == "/desc.xml" {
				return "HTTP/1.1 200 OK\r\n\r\n" + huge + huge
			}
			return ""
		}, "larger than"},
		{"huge chunked body", func(m, p, b string) string {
			if p == "/desc.xml" {
				return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n", len(huge), huge) + fmt.Sprintf("%x\r\n%s\r\n", len(huge), huge) + "0\r\n\r\n"
			}
			return ""
		}, "larger than"},
		{"garbage status", func(m, p, b string) string { return "SSH-2.0-OpenSSH\r\n\r\n" }, "bad http status"},
		{"control url elsewhere", func(m, p, b string) string {
			if p == "/desc.xml" {
				return httpOK(strings.Replace(fakeDesc, "<controlURL>/ctl", "<controlURL>http://127.0.0.2:80/ctl", 1))
			}
			return ""
		}, "not on the gateway"},
		{"soap garbage", func(m, p, b string) string {
			if p == "/ctl" {
				return "HTTP/1.1 500 Oops\r\nContent-Length: 9\r\n\r\n<<<<>>>>&"
			}
			return ""
		}, "http status 500"},
		{"no external address", func(m, p, b string) string {
			if strings.Contains(b, "GetExternalIPAddress") {
				return httpOK("<NewExternalIPAddress>0.0.0.0</NewExternalIPAddress>")
			}
			return ""
		}, "no usable external address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			igd := newFakeIGD(t, func(f *fakeIGD) { f.handle = tc.handle })
			c := upnpClient(t, igd)
			start := time.Now()
			m, err := c.Map(testCtx(t))
			if err == nil {
				t.Fatalf("got %+v, want an error", m)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
			if took := time.Since(start); took > pmpWait+ssdpWait+2*httpWait {
				t.Errorf("took %v", took)
			}
		})
	}
}

// TestUPnPSlowServer: an IGD that accepts and never answers costs one
// httpWait, then a clear error.
func TestUPnPSlowServer(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n<root>")) // then nothing
		}
	}()
	igd := newFakeIGD(t, func(f *fakeIGD) { f.location = "http://" + ln.Addr().String() + "/desc.xml" })
	start := time.Now()
	_, err = upnpClient(t, igd).Map(testCtx(t))
	if err == nil || !errors.Is(err, ErrNoMapping) {
		t.Fatalf("got %v, want ErrNoMapping", err)
	}
	if took := time.Since(start); took < httpWait || took > httpWait+pmpWait+time.Second {
		t.Errorf("took %v, want about httpWait (%v)", took, httpWait)
	}
}

// TestSSDPThirdAddress: SSDP answers from a host other than the gateway,
// or naming another host, are not followed.
func TestSSDPThirdAddress(t *testing.T) {
	third, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Skip("no 127.0.0.2 on this host")
	}
	defer third.Close()
	contacted := make(chan struct{}, 1)
	go func() {
		if c, err := third.Accept(); err == nil {
			c.Close()
			contacted <- struct{}{}
		}
	}()
	igd := newFakeIGD(t, func(f *fakeIGD) { f.location = "http://" + third.Addr().String() + "/desc.xml" })
	_, err = upnpClient(t, igd).Map(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "not the gateway") {
		t.Errorf("got %v, want a refusal of the third address", err)
	}
	select {
	case <-contacted:
		t.Error("the client connected to a third address")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestPickService(t *testing.T) {
	loc, _ := parseHTTPURL("http://10.0.0.1:5000/rootDesc.xml")
	for _, c := range []struct{ name, doc, want string }{
		{"relative", fakeDesc, "http://10.0.0.1:5000/ctl"},
		{"ppp only, absolute url", `<service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType><controlURL>http://10.0.0.1:5000/upnp/ppp</controlURL></service>`, "http://10.0.0.1:5000/upnp/ppp"},
		{"prefers ip:2 over ppp", `<service><serviceType>urn:schemas-upnp-org:service:WANPPPConnection:1</serviceType><controlURL>/ppp</controlURL></service>` +
			`<s:service><s:serviceType> urn:schemas-upnp-org:service:WANIPConnection:2 </s:serviceType><s:controlURL>/ip2?a=1&amp;b=2</s:controlURL></s:service>`, "http://10.0.0.1:5000/ip2?a=1&b=2"},
	} {
		g, err := pickService(c.doc, loc)
		if err != nil || g.control.String() != c.want {
			t.Errorf("%s: got %v %v, want %s", c.name, g, err, c.want)
		}
	}
}

func FuzzXML(f *testing.F) {
	f.Add(fakeDesc)
	f.Add("<a:b x='1'/><c></c></")
	f.Fuzz(func(t *testing.T, s string) {
		loc, _ := parseHTTPURL("http://10.0.0.1:5000/d.xml")
		pickService(s, loc)
		text(s, "errorCode")
		ssdpLocation([]byte(s))
		parseHTTPURL(s)
	})
}

func FuzzReadResponse(f *testing.F) {
	f.Add(httpOK("<a>1</a>"))
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, b, err := readResponse(bufio.NewReader(strings.NewReader(s)))
		if err == nil && len(b) > maxBody {
			t.Fatalf("body of %d bytes accepted", len(b))
		}
	})
}
