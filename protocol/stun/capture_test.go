package stun

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An exchange is one request and the response a real server sent to it,
// with the addresses on both legs. Captures in testdata/ hold one each; the
// live interop test checks its exchanges with the same checkExchange.
type exchange struct {
	Name     string
	Client   netip.AddrPort // request source
	Server   netip.AddrPort // request destination
	From     netip.AddrPort // response source
	To       netip.AddrPort // response destination (RESPONSE-PORT moves it)
	Request  []byte
	Response []byte
}

// TestCoturnCaptures checks the responses coturn sent in testdata/ (see
// testdata/README.md for how they were made).
func TestCoturnCaptures(t *testing.T) {
	files, err := filepath.Glob("testdata/coturn-*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in testdata: %v", err)
	}
	for _, name := range files {
		e, err := readExchange(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(e.Name, func(t *testing.T) { checkExchange(t, e) })
	}
}

// coturnOtherIP is the second listening IP of the coturn runs. coturn
// 4.6.1 (get_alt_addr in mainrelay.c) pairs every listener with the next
// listening IP after the *first* one of the family, so OTHER-ADDRESS names
// 127.0.0.2 even for requests that reached 127.0.0.2: only the answer to a
// request to the first IP is right by RFC 5780 §7.4. NAT discovery must
// take OTHER-ADDRESS from test I, sent to the primary address.
var coturnOtherIP = netip.MustParseAddr("127.0.0.2")

// checkExchange checks what RFC 8489 and RFC 5780 §6 ask of a server with
// two IPs and two ports, and coturn's documented deviations.
func checkExchange(t *testing.T, e exchange) {
	t.Helper()
	req, err := Parse(e.Request)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	resp, err := Parse(e.Response)
	if err != nil {
		t.Fatalf("response %x: %v", e.Response, err)
	}
	if resp.TxID != req.TxID {
		t.Errorf("transaction ID: got %x, want %x", resp.TxID, req.TxID)
	}
	if sw, err := resp.Software(); err != nil || !strings.HasPrefix(sw, "Coturn-") {
		t.Errorf("SOFTWARE: got %q, %v, want Coturn-...", sw, err)
	}
	// coturn signs with FINGERPRINT what it sends from the socket that
	// got the request back to the request's source; its other send path
	// (CHANGE-REQUEST, RESPONSE-PORT) adds none.
	wantFP := req.Fingerprint && e.From == e.Server && e.To == e.Client
	if resp.Fingerprint != wantFP {
		t.Errorf("FINGERPRINT in response: got %v, want %v", resp.Fingerprint, wantFP)
	}
	if code := wantError(req); code != 0 {
		ec, err := resp.ErrorCode()
		if resp.Type != TypeBindingError || err != nil || ec.Code != code || ec.Reason == "" || strings.ContainsRune(ec.Reason, 0) {
			t.Fatalf("got %v %v, %v, want binding error %d with a reason", resp.Type, ec, err, code)
		}
		if unknown := unknownRequired(req); len(unknown) > 0 {
			v, _ := resp.Get(AttrUnknownAttributes)
			if want := unknownList(unknown); !bytes.Equal(v, want) {
				t.Errorf("UNKNOWN-ATTRIBUTES: got %x, want %x", v, want)
			}
		}
		return
	}
	if resp.Type != TypeBindingSuccess {
		t.Fatalf("type: got %v, want binding success", resp.Type)
	}
	if ap, err := resp.XORMappedAddress(); ap != e.Client || err != nil {
		t.Errorf("XOR-MAPPED-ADDRESS: got %v, %v, want the request's source %v", ap, err, e.Client)
	}
	if ap, err := resp.MappedAddress(); err == nil && ap != e.Client {
		t.Errorf("MAPPED-ADDRESS: got %v, want %v", ap, e.Client)
	}
	other, err := resp.OtherAddress()
	if err != nil || other.Addr() != coturnOtherIP || other.Port() == e.Server.Port() {
		t.Fatalf("OTHER-ADDRESS: got %v, %v, want %v and another port than %v", other, err, coturnOtherIP, e.Server)
	}
	// CHANGE-REQUEST picks the source of the response (RFC 5780 §6.1).
	change, _ := req.ChangeRequest()
	want := e.Server
	if change&ChangeIP != 0 {
		want = netip.AddrPortFrom(other.Addr(), want.Port())
	}
	if change&ChangePort != 0 {
		want = netip.AddrPortFrom(want.Addr(), other.Port())
	}
	if e.From != want {
		t.Errorf("response came from %v, want %v for CHANGE-REQUEST %#x", e.From, want, uint32(change))
	}
	if ap, err := resp.ResponseOrigin(); ap != e.From || err != nil {
		t.Errorf("RESPONSE-ORIGIN: got %v, %v, want the response's source %v", ap, err, e.From)
	}
	wantTo := e.Client
	if port, err := req.ResponsePort(); err == nil {
		wantTo = netip.AddrPortFrom(e.Client.Addr(), port) // RFC 5780 §7.5
	}
	if e.To != wantTo {
		t.Errorf("response went to %v, want %v", e.To, wantTo)
	}
	if _, err := req.Padding(); err == nil {
		if _, ok := resp.Get(AttrPadding); !ok {
			t.Errorf("no PADDING in the response to a padded request (RFC 5780 §7.6)")
		}
	}
}

// wantError is the error code coturn answers req with, or 0.
func wantError(req Message) int {
	if len(unknownRequired(req)) > 0 {
		return CodeUnknownAttribute // RFC 8489 §6.3.1.1
	}
	_, padding := req.Get(AttrPadding)
	_, responsePort := req.Get(AttrResponsePort)
	if padding && responsePort {
		return CodeBadRequest // coturn: "you cannot use PADDING and RESPONSE_PORT together"
	}
	return 0
}

// unknownRequired lists comprehension-required attributes this package
// does not know (a server must refuse them, RFC 8489 §6.3.1.1).
func unknownRequired(m Message) []AttrType {
	var out []AttrType
	for _, a := range m.Attrs {
		if _, known := a.Type.name(); !known && a.Type.Required() {
			out = append(out, a.Type)
		}
	}
	return out
}

func unknownList(ts []AttrType) []byte {
	var b []byte
	for _, t := range ts {
		b = append(b, byte(t>>8), byte(t))
	}
	return b
}

// The capture format: "#" comments, then "key value" lines.
func writeExchange(path, comment string, e exchange) error {
	var b strings.Builder
	for line := range strings.Lines(comment) {
		b.WriteString("# " + line)
	}
	fmt.Fprintf(&b, "\nname %s\nclient %v\nserver %v\nfrom %v\nto %v\nrequest %x\nresponse %x\n",
		e.Name, e.Client, e.Server, e.From, e.To, e.Request, e.Response)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func readExchange(path string) (exchange, error) {
	f, err := os.Open(path)
	if err != nil {
		return exchange{}, err
	}
	defer f.Close()
	var e exchange
	addrs := map[string]*netip.AddrPort{"client": &e.Client, "server": &e.Server, "from": &e.From, "to": &e.To}
	blobs := map[string]*[]byte{"request": &e.Request, "response": &e.Response}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		switch {
		case key == "name":
			e.Name = val
		case addrs[key] != nil:
			*addrs[key], err = netip.ParseAddrPort(val)
		case blobs[key] != nil:
			*blobs[key], err = hex.DecodeString(val)
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			return e, fmt.Errorf("%s:%d: %s: %w", path, n, key, err)
		}
	}
	if e.Name == "" || e.Request == nil || e.Response == nil {
		return e, fmt.Errorf("%s: name, request or response missing", path)
	}
	return e, sc.Err()
}
