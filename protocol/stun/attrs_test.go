package stun

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// getters reads each typed attribute as an any, for the table below.
var getters = map[AttrType]func(*Message) (any, error){
	AttrMappedAddress:    func(m *Message) (any, error) { return m.MappedAddress() },
	AttrXORMappedAddress: func(m *Message) (any, error) { return m.XORMappedAddress() },
	AttrResponseOrigin:   func(m *Message) (any, error) { return m.ResponseOrigin() },
	AttrOtherAddress:     func(m *Message) (any, error) { return m.OtherAddress() },
	AttrSourceAddress:    func(m *Message) (any, error) { return m.SourceAddress() },
	AttrChangedAddress:   func(m *Message) (any, error) { return m.ChangedAddress() },
	AttrChangeRequest:    func(m *Message) (any, error) { return m.ChangeRequest() },
	AttrResponsePort:     func(m *Message) (any, error) { return m.ResponsePort() },
	AttrPadding:          func(m *Message) (any, error) { return m.Padding() },
	AttrSoftware:         func(m *Message) (any, error) { return m.Software() },
	AttrErrorCode:        func(m *Message) (any, error) { return m.ErrorCode() },
	AttrPinholeDelay:     func(m *Message) (any, error) { return m.Delay() },
}

// attrCases decode one attribute value in a message with testTx; want is
// the value or the error. The fuzzer starts from these too.
var attrCases = []struct {
	name  string
	typ   AttrType
	value string
	want  any
}{
	{"mapped-v4", AttrMappedAddress, "0001 0d96 c6336401", netip.MustParseAddrPort("198.51.100.1:3478")},
	{"mapped-reserved-byte-ignored", AttrMappedAddress, "ff01 0d96 c6336401", netip.MustParseAddrPort("198.51.100.1:3478")},
	{"mapped-v6", AttrMappedAddress, "0002 0035 20010db8 00000000 00000000 00000001", netip.MustParseAddrPort("[2001:db8::1]:53")},
	{"xor-v4", AttrXORMappedAddress, "0001 2eb2 ea12d545", netip.MustParseAddrPort("203.0.113.7:4000")},
	{"xor-v6", AttrXORMappedAddress, "0002 2127 0113a9fa 01020304 05060708 090a0b0d", netip.MustParseAddrPort("[2001:db8::1]:53")},
	{"response-origin", AttrResponseOrigin, "0001 87dc 7f000001", netip.MustParseAddrPort("127.0.0.1:34780")},
	{"other-address", AttrOtherAddress, "0001 87dd 7f000002", netip.MustParseAddrPort("127.0.0.2:34781")},
	{"rfc3489-source", AttrSourceAddress, "0001 0d96 c6336401", netip.MustParseAddrPort("198.51.100.1:3478")},
	{"rfc3489-changed", AttrChangedAddress, "0001 0d97 c6336402", netip.MustParseAddrPort("198.51.100.2:3479")},
	{"family-3", AttrMappedAddress, "0003 0035 01020304", ErrMalformed},
	{"v4-too-long", AttrMappedAddress, "0001 0035 01020304 00000000", ErrMalformed},
	{"v6-too-short", AttrXORMappedAddress, "0002 0035 01020304", ErrMalformed},
	{"address-empty", AttrOtherAddress, "", ErrMalformed},
	{"change-none", AttrChangeRequest, "00000000", ChangeRequest(0)},
	{"change-ip", AttrChangeRequest, "00000004", ChangeIP},
	{"change-ip-port", AttrChangeRequest, "00000006", ChangeIP | ChangePort},
	{"change-short", AttrChangeRequest, "0004", ErrMalformed},
	{"response-port", AttrResponsePort, "9c40 0000", uint16(40000)},
	{"response-port-long", AttrResponsePort, "9c40 0000 00", ErrMalformed},
	{"pinhole-delay-30s", AttrPinholeDelay, "00007530", 30 * time.Second},
	{"pinhole-delay-short", AttrPinholeDelay, "007530", ErrMalformed},
	{"padding", AttrPadding, "00000000 00000000", 8},
	{"padding-empty", AttrPadding, "", 0},
	{"padding-unaligned", AttrPadding, "000000", ErrMalformed},
	{"software", AttrSoftware, "70696e686f6c65", "pinhole"},
	{"software-763-bytes", AttrSoftware, strings.Repeat("41", 763), strings.Repeat("A", 763)},
	{"software-764-bytes", AttrSoftware, strings.Repeat("41", 764), ErrMalformed},
	{"error-420", AttrErrorCode, "00000414 556e6b6e6f776e20417474726962757465",
		ErrorCode{CodeUnknownAttribute, "Unknown Attribute"}},
	{"error-coturn-nul-padded", AttrErrorCode, "00000414 556e6b6e6f776e20417474726962757465000000",
		ErrorCode{CodeUnknownAttribute, "Unknown Attribute"}},
	{"error-reserved-bits-ignored", AttrErrorCode, "fffffc14", ErrorCode{420, ""}},
	{"error-699", AttrErrorCode, "00000663", ErrorCode{699, ""}},
	{"error-class-2", AttrErrorCode, "00000200", ErrMalformed},
	{"error-class-7", AttrErrorCode, "00000700", ErrMalformed},
	{"error-number-100", AttrErrorCode, "00000464", ErrMalformed},
	{"error-short", AttrErrorCode, "000004", ErrMalformed},
}

func TestAttrs(t *testing.T) {
	for _, c := range attrCases {
		t.Run(c.name, func(t *testing.T) {
			m := Message{Type: TypeBindingSuccess, TxID: testTx}
			m.Add(c.typ, unhex(t, c.value))
			got, err := getters[c.typ](&m)
			_, isCode := c.want.(ErrorCode) // a value that is also an error
			if want, ok := c.want.(error); ok && !isCode {
				if !errors.Is(err, want) {
					t.Fatalf("got %v, %v, want %v", got, err, want)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, %v, want %v", got, err, c.want)
			}
		})
	}
}

func TestAttrMissing(t *testing.T) {
	var m Message
	m.AddSoftware("x")
	for typ, get := range getters {
		if typ == AttrSoftware {
			continue
		}
		if _, err := get(&m); !errors.Is(err, ErrNoAttr) {
			t.Errorf("%v: got %v, want ErrNoAttr", typ, err)
		}
	}
}

func TestAddresses(t *testing.T) {
	cases := []struct {
		name string
		in   netip.AddrPort
		want netip.AddrPort
	}{
		{"v4", netip.MustParseAddrPort("192.0.2.1:32853"), netip.MustParseAddrPort("192.0.2.1:32853")},
		{"v6", netip.MustParseAddrPort("[2001:db8:1234:5678:11:2233:4455:6677]:32853"), netip.MustParseAddrPort("[2001:db8:1234:5678:11:2233:4455:6677]:32853")},
		{"v4-mapped-goes-out-as-v4", netip.MustParseAddrPort("[::ffff:192.0.2.1]:1"), netip.MustParseAddrPort("192.0.2.1:1")},
		{"zone-dropped", netip.MustParseAddrPort("[fe80::1%eth0]:2"), netip.MustParseAddrPort("[fe80::1]:2")},
		{"invalid-as-zero", netip.AddrPort{}, netip.MustParseAddrPort("0.0.0.0:0")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := Message{Type: TypeBindingSuccess, TxID: NewTxID()}
			m.AddXORMappedAddress(c.in)
			m.AddOtherAddress(c.in)
			m, err := Parse(Append(nil, m))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := m.XORMappedAddress(); got != c.want || err != nil {
				t.Errorf("XOR-MAPPED-ADDRESS: got %v, %v, want %v", got, err, c.want)
			}
			if got, err := m.OtherAddress(); got != c.want || err != nil {
				t.Errorf("OTHER-ADDRESS: got %v, %v, want %v", got, err, c.want)
			}
		})
	}
}

func TestText(t *testing.T) {
	long := strings.Repeat("é", 200)
	var m Message
	m.AddSoftware(long)
	m.AddErrorCode(ErrorCode{Code: 42, Reason: long})
	s, err := m.Software()
	if err != nil || utf8.RuneCountInString(s) != 127 || !strings.HasPrefix(long, s) {
		t.Errorf("SOFTWARE of 200 runes: got %d runes, %v, want the first 127", utf8.RuneCountInString(s), err)
	}
	e, err := m.ErrorCode()
	if err != nil || e.Code != CodeServerError || utf8.RuneCountInString(e.Reason) != 127 {
		t.Errorf("ERROR-CODE 42: got %d with %d runes, %v, want 500 with 127", e.Code, utf8.RuneCountInString(e.Reason), err)
	}
	if got := (ErrorCode{420, "Unknown Attribute"}).Error(); got != "STUN error 420 Unknown Attribute" {
		t.Errorf("Error: got %q", got)
	}
}

func TestAttrTypeString(t *testing.T) {
	cases := []struct {
		typ      AttrType
		name     string
		required bool
	}{
		{AttrXORMappedAddress, "XOR-MAPPED-ADDRESS", true},
		{AttrOtherAddress, "OTHER-ADDRESS", false},
		{0x7FF0, "attribute 0x7ff0", true},
	}
	for _, c := range cases {
		if c.typ.String() != c.name || c.typ.Required() != c.required {
			t.Errorf("%#04x: got %q required=%v, want %q %v", uint16(c.typ), c.typ.String(), c.typ.Required(), c.name, c.required)
		}
	}
}

// TestDelayRoundTrip pins PINHOLE-DELAY on the wire: type 0xC05A (private,
// comprehension-optional), 4 bytes of milliseconds.
func TestDelayRoundTrip(t *testing.T) {
	m := Message{Type: TypeBindingRequest, TxID: testTx}
	m.AddDelay(90 * time.Second)
	b := Append(nil, m)
	if got, want := fmt.Sprintf("%x", b[HeaderLen:]), "c05a000400015f90"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := p.Delay(); err != nil || d != 90*time.Second {
		t.Fatalf("got %v, %v, want 1m30s", d, err)
	}
	if AttrPinholeDelay.Required() {
		t.Fatal("PINHOLE-DELAY must be comprehension-optional: other servers ignore it")
	}
}
