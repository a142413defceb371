package stun

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var testTx = TxID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

const testTxHex = "01020304 05060708 090a0b0c"

func TestType(t *testing.T) {
	cases := []struct {
		name   string
		method Method
		class  Class
		wire   Type
	}{
		{"binding-request", MethodBinding, ClassRequest, 0x0001},
		{"binding-indication", MethodBinding, ClassIndication, 0x0011},
		{"binding-success", MethodBinding, ClassSuccess, 0x0101},
		{"binding-error", MethodBinding, ClassError, 0x0111},
		{"allocate-success", 0x003, ClassSuccess, 0x0103}, // RFC 8656 §17
		{"data-indication", 0x007, ClassIndication, 0x0017},
		{"m4-m6", 0x070, ClassRequest, 0x00E0},
		{"m7-m11-error", 0xF80, ClassError, 0x3F10},
		{"all-bits", 0xFFF, ClassError, 0x3FFF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := NewType(c.method, c.class); got != c.wire {
				t.Errorf("NewType: got %#04x, want %#04x", uint16(got), uint16(c.wire))
			}
			if c.wire.Method() != c.method || c.wire.Class() != c.class {
				t.Errorf("decode %#04x: got %v, %v, want %v, %v", uint16(c.wire), c.wire.Method(), c.wire.Class(), c.method, c.class)
			}
		})
	}
	for typ, want := range map[Type]string{TypeBindingSuccess: "binding success", 0x0103: "method 0x003 success"} {
		if s := typ.String(); s != want {
			t.Errorf("String: got %q, want %q", s, want)
		}
	}
}

// wireCases pins what we send. The fuzzer starts from these.
var wireCases = []struct {
	name string
	msg  func() Message
	hex  string
}{
	{"empty", func() Message { return Message{Type: TypeBindingRequest, TxID: testTx} },
		"0001 0000 2112a442" + testTxHex},
	{"binding-request", func() Message { return mustParse(BindingRequest(testTx, 0)) },
		"0001 0008 2112a442" + testTxHex + "8028 0004 5b20f9cc"},
	{"change-ip-port", func() Message { return mustParse(BindingRequest(testTx, ChangeIP|ChangePort)) },
		"0001 0010 2112a442" + testTxHex + "0003 0004 00000006 8028 0004 5eb7183d"},
	{"success-v4", func() Message {
		m := Message{Type: TypeBindingSuccess, TxID: testTx, Fingerprint: true}
		m.AddXORMappedAddress(netip.MustParseAddrPort("203.0.113.7:4000"))
		m.AddResponseOrigin(netip.MustParseAddrPort("198.51.100.1:3478"))
		m.AddOtherAddress(netip.MustParseAddrPort("198.51.100.2:3479"))
		m.AddSoftware("pinhole")
		return m
	}, "0101 0038 2112a442" + testTxHex +
		" 0020 0008 0001 2eb2 ea12d545" + // 203.0.113.7 ^ 2112a442, 4000 ^ 0x2112
		" 802b 0008 0001 0d96 c6336401" +
		" 802c 0008 0001 0d97 c6336402" +
		" 8022 0007 70696e686f6c6500" +
		" 8028 0004 45e48e07"},
	{"success-v6", func() Message {
		m := Message{Type: TypeBindingSuccess, TxID: testTx}
		m.AddXORMappedAddress(netip.MustParseAddrPort("[2001:db8::1]:53"))
		m.AddMappedAddress(netip.MustParseAddrPort("[2001:db8::1]:53"))
		return m
	}, "0101 0030 2112a442" + testTxHex +
		" 0020 0014 0002 2127 0113a9fa 01020304 05060708 090a0b0d" +
		" 0001 0014 0002 0035 20010db8 00000000 00000000 00000001"},
	{"error-420", func() Message {
		m := Message{Type: TypeBindingError, TxID: testTx}
		m.AddErrorCode(ErrorCode{Code: CodeUnknownAttribute, Reason: "Unknown Attribute"})
		m.Add(AttrUnknownAttributes, []byte{0x7f, 0xff})
		return m
	}, "0111 0024 2112a442" + testTxHex +
		" 0009 0015 00000414 556e6b6e6f776e20417474726962757465 000000" +
		" 000a 0002 7fff 0000"},
	{"padding-response-port", func() Message {
		m := Message{Type: TypeBindingRequest, TxID: testTx}
		m.AddResponsePort(40000)
		m.AddPadding(6)
		return m
	}, "0001 0014 2112a442" + testTxHex + " 0027 0004 9c40 0000 0026 0008 0000000000000000"},
}

func mustParse(b []byte) Message {
	m, err := Parse(b)
	if err != nil {
		panic(err)
	}
	return m
}

func TestWire(t *testing.T) {
	for _, c := range wireCases {
		t.Run(c.name, func(t *testing.T) {
			m := c.msg()
			got := Append(nil, m)
			if want := unhex(t, c.hex); !bytes.Equal(got, want) {
				t.Fatalf("wire:\n got %x\nwant %x", got, want)
			}
			if !Is(got) {
				t.Error("Is: got false")
			}
			back, err := Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if !equalMessages(back, m) {
				t.Fatalf("round trip: got %+v, want %+v", back, m)
			}
			// Appending after a prefix encodes the same bytes.
			prefixed := Append([]byte("xyz"), m)
			if !bytes.Equal(prefixed[3:], got) {
				t.Errorf("after a prefix: got %x, want %x", prefixed[3:], got)
			}
		})
	}
}

// equalMessages compares messages, treating nil and empty Attrs alike.
func equalMessages(a, b Message) bool {
	if len(a.Attrs) == 0 && len(b.Attrs) == 0 {
		a.Attrs, b.Attrs = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestIs(t *testing.T) {
	good := BindingRequest(testTx, 0)
	cases := []struct {
		name string
		b    []byte
		want bool
	}{
		{"binding-request", good, true},
		{"header-only", unhex(t, "0101 0000 2112a442"+testTxHex), true},
		{"short", good[:19], false},
		{"top-bit", append([]byte{0x40}, good[1:]...), false},
		{"pinhole-datagram", append([]byte{0xA3}, good[1:]...), false},
		{"bad-cookie", unhex(t, "0001 0000 2112a443"+testTxHex), false},
		{"rfc3489-no-cookie", unhex(t, "0001 0000 01020304"+testTxHex), false},
		{"length-not-multiple-of-4", unhex(t, "0001 0002 2112a442"+testTxHex+"0000"), false},
		{"length-too-long", unhex(t, "0001 0004 2112a442"+testTxHex), false},
		{"length-too-short", unhex(t, "0001 0000 2112a442"+testTxHex+"00000000"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Is(c.b); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	good := BindingRequest(testTx, ChangePort)
	badFP := bytes.Clone(good)
	badFP[len(badFP)-1] ^= 1
	// FINGERPRINT followed by SOFTWARE, with a valid CRC and length.
	notLast := append(bytes.Clone(good), 0x80, 0x22, 0, 0)
	notLast[3] += 4
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrNotSTUN},
		{"short", good[:HeaderLen-1], ErrNotSTUN},
		{"top-bits", append([]byte{0x80}, good[1:]...), ErrNotSTUN},
		{"bad-cookie", unhex(t, "0001 0000 2112a443"+testTxHex), ErrNotSTUN},
		{"truncated", good[:len(good)-4], ErrMalformed},
		{"trailing-bytes", append(bytes.Clone(good), 0, 0, 0, 0), ErrMalformed},
		{"odd-length", unhex(t, "0001 0003 2112a442"+testTxHex+"000000"), ErrMalformed},
		{"attr-overruns", unhex(t, "0001 0008 2112a442"+testTxHex+"8022 0008 41414141"), ErrMalformed},
		{"padding-missing", unhex(t, "0001 0005 2112a442"+testTxHex+"8022 0001 41"), ErrMalformed},
		{"padding-cut", unhex(t, "0001 0008 2112a442"+testTxHex+"8022 0005 41414141"), ErrMalformed},
		{"bad-fingerprint", badFP, ErrFingerprint},
		{"fingerprint-not-last", notLast, ErrMalformed},
		{"fingerprint-short", unhex(t, "0001 0008 2112a442"+testTxHex+"8028 0002 0000 0000"), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Parse(c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %+v, %v, want %v", m, err, c.want)
			}
		})
	}
	if _, err := Parse(good); err != nil {
		t.Fatalf("the good message: %v", err)
	}
}

// Attribute values alias the input but cannot grow into the next one.
func TestParseAliasing(t *testing.T) {
	m := Message{Type: TypeBindingRequest, TxID: testTx}
	m.AddSoftware("ab")
	m.AddResponsePort(7)
	b := Append(nil, m)
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(p.Attrs[0].Value, 'c', 'd', 'e', 'f', 'g', 'h')
	if port, err := p.ResponsePort(); port != 7 || err != nil {
		t.Fatalf("RESPONSE-PORT after appending to SOFTWARE: got %d, %v", port, err)
	}
}

func TestNewTxID(t *testing.T) {
	a, b := NewTxID(), NewTxID()
	if a == b || a == (TxID{}) {
		t.Fatalf("got %x and %x", a, b)
	}
}
