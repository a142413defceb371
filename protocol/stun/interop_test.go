package stun

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var capture = flag.Bool("capture", false, "TestCoturnInterop: rewrite testdata/coturn-*.txt from this run")

// Bounds of the live test: nothing waits longer than these.
const (
	coturnStartTimeout = 10 * time.Second // until the first Binding answer
	coturnRunTimeout   = 60 * time.Second // the server's whole life
	probeTimeout       = 3 * time.Second  // one exchange, resends included
	probeResend        = 250 * time.Millisecond
)

// A coturn probe is one request of RFC 5780 §4's tests, or a refusal.
var coturnProbes = []struct {
	name  string
	toAlt bool // to the other IP, primary port (RFC 5780 §4.3 test II)
	build func(tx TxID, responsePort uint16) Message
}{
	{"binding", false, func(tx TxID, _ uint16) Message { return mustParse(BindingRequest(tx, 0)) }},
	{"change-port", false, func(tx TxID, _ uint16) Message { return mustParse(BindingRequest(tx, ChangePort)) }},
	{"change-ip", false, func(tx TxID, _ uint16) Message { return mustParse(BindingRequest(tx, ChangeIP)) }},
	{"change-ip-port", false, func(tx TxID, _ uint16) Message { return mustParse(BindingRequest(tx, ChangeIP|ChangePort)) }},
	{"test-ii", true, func(tx TxID, _ uint16) Message { return mustParse(BindingRequest(tx, 0)) }},
	{"no-fingerprint", false, func(tx TxID, _ uint16) Message { return Message{Type: TypeBindingRequest, TxID: tx} }},
	{"response-port", false, func(tx TxID, port uint16) Message {
		m := Message{Type: TypeBindingRequest, TxID: tx, Fingerprint: true}
		m.AddResponsePort(port)
		return m
	}},
	{"padding", false, func(tx TxID, _ uint16) Message {
		m := Message{Type: TypeBindingRequest, TxID: tx, Fingerprint: true}
		m.AddPadding(64)
		return m
	}},
	{"padding-response-port", false, func(tx TxID, port uint16) Message {
		m := Message{Type: TypeBindingRequest, TxID: tx, Fingerprint: true}
		m.AddResponsePort(port)
		m.AddPadding(64)
		return m
	}},
	{"unknown-attribute", false, func(tx TxID, _ uint16) Message {
		m := Message{Type: TypeBindingRequest, TxID: tx, Fingerprint: true}
		m.Add(0x7FF0, []byte{1, 2, 3, 4})
		return m
	}},
}

// TestCoturnInterop runs coturn on 127.0.0.1 and 127.0.0.2 (both on lo)
// and checks our requests against its answers. With -capture it rewrites
// the captures TestCoturnCaptures reads.
func TestCoturnInterop(t *testing.T) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("turnserver not installed, and CI=true: CI must install coturn (.ci/apt-packages)")
		}
		t.Skip("SKIP: turnserver not installed (apt-get install coturn)")
	}
	port := uint16(34780)
	if !*capture {
		port = freePortPair(t)
	}
	srv := startCoturn(t, bin, port)
	for _, p := range coturnProbes {
		t.Run(p.name, func(t *testing.T) {
			client, second := listenUDP(t), listenUDP(t)
			server := srv.primary
			if p.toAlt {
				server = netip.AddrPortFrom(srv.other.Addr(), srv.primary.Port())
			}
			m := p.build(NewTxID(), second.LocalAddr().(*net.UDPAddr).AddrPort().Port())
			e := exchange{Name: p.name, Client: client.LocalAddr().(*net.UDPAddr).AddrPort(), Server: server, Request: Append(nil, m)}
			recv := client // RESPONSE-PORT moves a success, not an error
			if _, err := m.ResponsePort(); err == nil && wantError(m) == 0 {
				recv = second
			}
			e.To = recv.LocalAddr().(*net.UDPAddr).AddrPort()
			e.Response, e.From, err = roundTrip(client, recv, e.Request, server, m.TxID)
			if err != nil {
				t.Fatalf("%v (server log: %s)", err, srv.log())
			}
			checkExchange(t, e)
			if *capture && !t.Failed() {
				comment := fmt.Sprintf("coturn %s: %s\nrequest from %v to %v; response from %v to %v\n",
					srv.version, strings.Join(srv.args, " "), e.Client, e.Server, e.From, e.To)
				if err := writeExchange(filepath.Join("testdata", "coturn-"+p.name+".txt"), comment, e); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

type coturn struct {
	version string
	args    []string
	primary netip.AddrPort // 127.0.0.1:port
	other   netip.AddrPort // 127.0.0.2:port+1, RFC 5780's alternate IP and port
	log     func() string
}

// startCoturn starts a STUN-only turnserver on loopback, with two IPs and
// two ports so that it does RFC 5780, and stops it when the test ends.
func startCoturn(t *testing.T, bin string, port uint16) *coturn {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), coturnRunTimeout)
	out, _ := exec.CommandContext(ctx, bin, "--version").Output()
	c := &coturn{
		version: strings.TrimSpace(string(out)),
		primary: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		other:   netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port+1),
		args: []string{"-n", "--stun-only", "--no-auth", "--no-tcp", "--no-tls", "--no-dtls", "--no-cli", "-m", "0",
			"-L", "127.0.0.1", "-L", "127.0.0.2", "-E", "127.0.0.1",
			"--listening-port", strconv.Itoa(int(port)), "--alt-listening-port", strconv.Itoa(int(port) + 1),
			"--log-file", "stdout", "--simple-log", "--pidfile", "DIR/turnserver.pid", "--db", "DIR/turndb"},
	}
	args := make([]string, len(c.args))
	for i, a := range c.args {
		args[i] = strings.Replace(a, "DIR", dir, 1)
	}
	logf, err := os.Create(filepath.Join(dir, "turnserver.log"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c.log = func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start turnserver: %v", err)
	}
	// The waiter goroutine ends when turnserver does; Cleanup kills it
	// and waits for both.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		cancel()
		logf.Close()
	})
	// Ready once it answers on both addresses.
	conn := listenUDP(t)
	deadline := time.Now().Add(coturnStartTimeout)
	for _, to := range []netip.AddrPort{c.primary, c.other} {
		for {
			tx := NewTxID()
			_, _, err := roundTrip(conn, conn, BindingRequest(tx, 0), to, tx)
			if err == nil {
				break
			}
			select {
			case <-exited:
				t.Fatalf("turnserver %v exited: %v\n%s", args, waitErr, c.log())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("turnserver %v never answered on %v: %v\n%s", args, to, err, c.log())
			}
		}
	}
	return c
}

// roundTrip sends req to server from client until a response with tx
// arrives on recv, for at most probeTimeout.
func roundTrip(client, recv *net.UDPConn, req []byte, server netip.AddrPort, tx TxID) ([]byte, netip.AddrPort, error) {
	deadline := time.Now().Add(probeTimeout)
	buf := make([]byte, 2048)
	for time.Now().Before(deadline) {
		if _, err := client.WriteToUDPAddrPort(req, server); err != nil {
			return nil, netip.AddrPort{}, err
		}
		wait := time.Now().Add(probeResend)
		if wait.After(deadline) {
			wait = deadline
		}
		recv.SetReadDeadline(wait)
		for {
			n, from, err := recv.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return nil, netip.AddrPort{}, err
			}
			if m, err := Parse(buf[:n]); err == nil && m.TxID == tx {
				return append([]byte(nil), buf[:n]...), from, nil
			}
		}
	}
	return nil, netip.AddrPort{}, fmt.Errorf("no response from %v in %v", server, probeTimeout)
}

func listenUDP(t *testing.T) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// freePortPair finds a port p with p and p+1 free on both loopback IPs,
// below Linux's ephemeral range (32768-60999) so no client socket takes it.
// Another process can still take them before coturn binds; startCoturn
// then fails loudly rather than talk to a stranger.
func freePortPair(t *testing.T) uint16 {
	for range 50 {
		p := uint16(20000 + rand.IntN(12000))
		ok := true
		for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
			for _, port := range []uint16{p, p + 1} {
				c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), port)))
				if err != nil {
					ok = false
					continue
				}
				c.Close()
			}
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free UDP port pair on 127.0.0.1 and 127.0.0.2")
	return 0
}
