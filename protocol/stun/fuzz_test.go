package stun

import (
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse decodes arbitrary datagrams: no panic, Is agrees with Parse,
// whatever parses re-encodes to as many bytes that parse to an equal
// message, and every typed getter's answer survives its adder.
func FuzzParse(f *testing.F) {
	for _, c := range wireCases {
		f.Add(unhex(f, c.hex))
	}
	for _, v := range []string{rfc5769Request, rfc5769IPv4Response, rfc5769IPv6Response, rfc5769LongTerm} {
		f.Add(unhex(f, v))
	}
	for _, c := range attrCases {
		f.Add(Append(nil, Message{Type: TypeBindingSuccess, TxID: testTx, Attrs: []Attr{{c.typ, unhex(f, c.value)}}}))
	}
	captures, _ := filepath.Glob("testdata/coturn-*.txt")
	for _, name := range captures {
		e, err := readExchange(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.Request)
		f.Add(e.Response)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if Is(b) && errors.Is(err, ErrNotSTUN) {
				t.Fatalf("Is accepts %x, Parse says %v", b, err)
			}
			return
		}
		if !Is(b) {
			t.Fatalf("Parse accepts %x, Is does not", b)
		}
		again := Append(nil, m)
		m2, err := Parse(again)
		if err != nil || !reflect.DeepEqual(m2, m) || len(again) != len(b) {
			t.Fatalf("round trip of %x:\n got %+v, %v (%d bytes)\nwant %+v (%d bytes)", b, m2, err, len(again), m, len(b))
		}
		checkTypedRoundTrip(t, &m)
	})
}

// checkTypedRoundTrip re-adds each attribute a typed getter accepts to a
// fresh message and reads it back.
func checkTypedRoundTrip(t *testing.T, m *Message) {
	fresh := func() *Message { return &Message{Type: m.Type, TxID: m.TxID} }
	unmap := func(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }
	addrs := []struct {
		get func(*Message) (netip.AddrPort, error)
		add func(*Message, netip.AddrPort)
	}{
		{(*Message).MappedAddress, (*Message).AddMappedAddress},
		{(*Message).XORMappedAddress, (*Message).AddXORMappedAddress},
		{(*Message).ResponseOrigin, (*Message).AddResponseOrigin},
		{(*Message).OtherAddress, (*Message).AddOtherAddress},
	}
	for i, a := range addrs {
		if ap, err := a.get(m); err == nil {
			n := fresh()
			a.add(n, ap)
			if got, err := a.get(n); got != unmap(ap) || err != nil {
				t.Fatalf("address %d: got %v, %v, want %v", i, got, err, unmap(ap))
			}
		}
	}
	_, _ = m.SourceAddress()
	_, _ = m.ChangedAddress()
	if c, err := m.ChangeRequest(); err == nil {
		n := fresh()
		n.AddChangeRequest(c)
		if got, err := n.ChangeRequest(); got != c || err != nil {
			t.Fatalf("CHANGE-REQUEST: got %#x, %v, want %#x", got, err, c)
		}
	}
	if p, err := m.ResponsePort(); err == nil {
		n := fresh()
		n.AddResponsePort(p)
		if got, err := n.ResponsePort(); got != p || err != nil {
			t.Fatalf("RESPONSE-PORT: got %d, %v, want %d", got, err, p)
		}
	}
	if l, err := m.Padding(); err == nil {
		n := fresh()
		n.AddPadding(l)
		if got, err := n.Padding(); got != l || err != nil {
			t.Fatalf("PADDING: got %d, %v, want %d", got, err, l)
		}
	}
	sent := func(s string) string { return strings.TrimRight(clip(s), "\x00") }
	if s, err := m.Software(); err == nil {
		n := fresh()
		n.AddSoftware(s)
		if got, err := n.Software(); got != sent(s) || err != nil {
			t.Fatalf("SOFTWARE: got %q, %v, want %q", got, err, sent(s))
		}
	}
	if e, err := m.ErrorCode(); err == nil {
		n := fresh()
		n.AddErrorCode(e)
		want := ErrorCode{Code: e.Code, Reason: sent(e.Reason)}
		if got, err := n.ErrorCode(); got != want || err != nil {
			t.Fatalf("ERROR-CODE: got %v, %v, want %v", got, err, want)
		}
	}
}
