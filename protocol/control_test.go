package protocol

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// controlCases pins each message's wire form in hex; the fuzzers start
// from these.
var controlCases = []struct {
	name string
	msg  Message
	hex  string
}{
	{"hello", Hello{Name: "r1", Software: "v1", Heartbeat: 15 * time.Second}, "01000a 027231 027631 00003a98"},
	{"register", Register{Exposures: []Exposure{{Name: "web", Proto: ProtoTCP, RemotePort: 8080}, {Name: "dns", Proto: ProtoUDP, RemotePort: 5353}}},
		"02 0010 0002 03776562 01 1f90 03646e73 02 14e9"},
	{"register-empty", Register{}, "02 0002 0000"},
	{"reply", RegisterReply{Statuses: []ExposureStatus{{Name: "web", Status: StatusNotAllowed, Detail: "no"}}},
		"03 000a 0001 03776562 01 026e6f"},
	{"ping", Ping{Seq: 1, SentNanos: 2}, "04 000d 00000001 0000000000000002 00"},
	{"pong-v4", Pong{Seq: 1, SentNanos: 2, Observed: netip.MustParseAddrPort("203.0.113.7:4000")},
		"05 0013 00000001 0000000000000002 04 cb007107 0fa0"},
	{"pong-v6", Pong{Seq: 9, Observed: netip.MustParseAddrPort("[2001:db8::1]:53")},
		"05 001f 00000009 0000000000000000 06 20010db8000000000000000000000001 0035"},
	{"notice", Notice{Code: NoticeReplaced, Text: "x"}, "06 0003 01 0178"},
	{"notice-duplicate-key", Notice{Code: NoticeDuplicateKey, Text: "x"}, "06 0003 06 0178"},
	{"reset", Reset{Stream: 0x0103, Reason: ResetStalled}, "07 0005 00000103 02"},
	{"set-heartbeat", SetHeartbeat{Interval: 118 * time.Second}, "08 0004 0001ccf0"},
	{"peer-info", PeerInfo{Candidates: []netip.AddrPort{netip.MustParseAddrPort("192.168.1.2:7000")},
		Facts: NATFacts{UDP: Yes, Mapping: MappingEndpointIndependent, Filtering: FilteringAddressPortDependent,
			Ports: PortsSequential, Delta: -2, Hairpin: No, Lifetime: 30 * time.Second}},
		"09 0011 01 04c0a80102 1b58 01 01 03 02 fffe 02 001e"},
	{"peer-connect", PeerConnect{Peer: "gw"}, "0a 0003 026777"},
	{"peer-intro", PeerIntro{Pair: 7, Status: PeerOK, Initiator: true, Peer: "gw", Key: [32]byte{1},
		Candidates: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.7:4000")}, Facts: NATFacts{UDP: Yes}, StartIn: 25 * time.Millisecond},
		"0b 003c 00000007 00 01 026777 01" + strings.Repeat("00", 31) + " 01 04cb007107 0fa0 01 00 00 00 0000 00 0000 0019"},
	{"peer-intro-offline", PeerIntro{Pair: 0, Status: PeerOffline, Peer: "gw"},
		"0b 0035 00000000 01 00 026777" + strings.Repeat("00", 32) + " 00 00 00 00 00 0000 00 0000 0000"},
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestControlWire(t *testing.T) {
	for _, c := range controlCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := AppendFrame(nil, c.msg)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, c.hex); !bytes.Equal(got, want) {
				t.Fatalf("wire: got %x, want %x", got, want)
			}
			back, err := ReadMessage(bytes.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, c.msg) && !(c.name == "register-empty") {
				t.Fatalf("round trip: got %#v, want %#v", back, c.msg)
			}
		})
	}
}

func TestControlRefusals(t *testing.T) {
	cases := []struct{ name, hex string }{
		{"unknown type", "63 0000"},
		{"trailing byte", "04 000e 00000001 0000000000000002 00 ff"},
		{"short body", "04 0004 00000001"},
		{"bad proto", "02 0007 0001 0161 07 0050"},
		{"bad family", "04 000d 00000001 0000000000000002 05"},
		{"truncated frame", "01 0010 00"},
		{"short reset", "07 0004 00000103"},
		{"peer-info bad mapping", "09 0009 00 01 07 03 02 fffe 02 001e"},
		{"peer-info too many", "09 0001 11"},
		{"peer-intro bad initiator", "0b 0035 00000000 01 02 026777" + strings.Repeat("00", 32) + " 00 00 00 00 00 0000 00 0000 0000"},
	}
	for _, c := range cases {
		if m, err := ReadMessage(bytes.NewReader(unhex(t, c.hex))); err == nil {
			t.Errorf("%s: decoded %#v, want an error", c.name, m)
		}
	}
}

func TestStreamHeader(t *testing.T) {
	h := StreamHeader{Proto: ProtoTCP, Exposure: "web", Client: netip.MustParseAddrPort("198.51.100.9:51000"),
		Server: netip.MustParseAddrPort("203.0.113.1:80")}
	b := AppendStreamHeader(nil, h)
	if want := unhex(t, "0014 01 01 03776562 04 c6336409 c738 04 cb007101 0050"); !bytes.Equal(b, want) {
		t.Fatalf("wire: got %x, want %x", b, want)
	}
	got, err := ReadStreamHeader(bytes.NewReader(append(b, "data"...)))
	h.Read = len(b) // all of the header, none of what follows
	if err != nil || got != h {
		t.Fatalf("round trip: got %+v, %v", got, err)
	}
	if _, err := ParseStreamHeader(unhex(t, "02 01 00 00")); err == nil {
		t.Fatal("stream header version 2 accepted")
	}
}

func TestUDPFrames(t *testing.T) {
	var stream []byte
	payloads := [][]byte{{}, []byte("a"), bytes.Repeat([]byte{7}, 1400)}
	for _, p := range payloads {
		stream, _ = AppendUDPFrame(stream, p)
	}
	r := bytes.NewReader(stream)
	buf := make([]byte, MaxUDPPayload)
	for i, want := range payloads {
		got, err := ReadUDPFrame(r, buf)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, %v; want %d", i, len(got), err, len(want))
		}
	}
	if _, err := AppendUDPFrame(nil, make([]byte, MaxUDPPayload+1)); err == nil {
		t.Fatal("oversized datagram framed")
	}
}

func TestDatagramHeaders(t *testing.T) {
	d := AppendDataHeader(nil, DataHeader{Receiver: 0x01020304, Counter: 5})
	if want := unhex(t, "a3000000 01020304 0000000000000005"); !bytes.Equal(d, want) {
		t.Fatalf("data header: got %x, want %x", d, want)
	}
	r := AppendRefuse(nil, Refuse{Code: RefuseUnknownSession, Version: Version, Index: 9})
	if got, err := ParseRefuse(r); err != nil || got.Code != RefuseUnknownSession || got.Index != 9 {
		t.Fatalf("refuse: got %+v, %v", got, err)
	}
	for _, b := range [][]byte{{}, {0x00, 0x01}, {0x16, 0x03}} {
		if _, err := Classify(b); err == nil {
			t.Fatalf("Classify(%x) accepted a non-pinhole datagram", b)
		}
	}
	ck := AppendCookieHeader(nil, CookieHeader{Reason: CookieStale, Receiver: 0x0a0b0c0d})
	if want := unhex(t, "a5020000 0a0b0c0d"); !bytes.Equal(ck, want) {
		t.Fatalf("cookie header: got %x, want %x", ck, want)
	}
	full := append(ck, make([]byte, CookieReplyLen-CookieHeaderLen)...)
	if h, err := ParseCookieHeader(full); err != nil || h.Reason != CookieStale || h.Receiver != 0x0a0b0c0d {
		t.Fatalf("cookie header: got %+v, %v", h, err)
	}
	if _, err := ParseCookieHeader(ck); err == nil {
		t.Fatal("cookie reply of the wrong length accepted")
	}
}

// TestReceiverIndex pins where each datagram type carries the index of the
// session it is addressed to.
func TestReceiverIndex(t *testing.T) {
	resp := AppendHandshakeHeader(nil, HandshakeHeader{Type: TypeHandshakeResp, Version: Version, Sender: 1})
	resp = append(resp, 0, 0, 0, 7)
	cases := []struct {
		name string
		b    []byte
		want uint32
		ok   bool
	}{
		{"data", AppendDataHeader(nil, DataHeader{Receiver: 5, Counter: 1}), 5, true},
		{"refuse", AppendRefuse(nil, Refuse{Code: RefuseUnknownSession, Index: 6}), 6, true},
		{"handshake response", resp, 7, true},
		{"cookie", AppendCookieHeader(nil, CookieHeader{Receiver: 8}), 8, true},
		{"initiation", AppendHandshakeHeader(nil, HandshakeHeader{Type: TypeHandshakeInit, Sender: 9}), 0, false},
		{"short response", resp[:10], 0, false},
		{"short data", []byte{byte(TypeData), 0, 0}, 0, false},
	}
	for _, c := range cases {
		typ, _ := Classify(c.b)
		if got, ok := ReceiverIndex(typ, c.b); got != c.want || ok != c.ok {
			t.Errorf("%s: got %d, %v; want %d, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

func TestHandshakePayload(t *testing.T) {
	p := HandshakePayload{Observed: netip.MustParseAddrPort("203.0.113.9:40000"), TimeNanos: 1_800_000_000_123_456_789}
	got, err := ParseHandshakePayload(p.Append(nil))
	if err != nil || got != p {
		t.Fatalf("payload round trip: got %+v, %v; want %+v", got, err, p)
	}
	// Capabilities are one trailing byte, absent when zero, so an agent
	// that did not offer any gets the payload it always parsed.
	if len(p.Append(nil)) != 1+4+2+8 {
		t.Fatalf("payload without capabilities is %d bytes", len(p.Append(nil)))
	}
	p.Caps = FlagParkable
	if got, err := ParseHandshakePayload(p.Append(nil)); err != nil || got != p {
		t.Fatalf("payload with capabilities: got %+v, %v; want %+v", got, err, p)
	}
	if _, err := ParseHandshakePayload(append(p.Append(nil), 0)); err == nil {
		t.Fatal("a payload with two trailing bytes parsed")
	}
}

// TestParkWire pins the park payload (epoch, then 1 for parked) and the
// handshake header's flags byte, which older builds send as zero.
func TestParkWire(t *testing.T) {
	if got, want := AppendPark(nil, 0x01020304, true), unhex(t, "01020304 01"); !bytes.Equal(got, want) {
		t.Fatalf("park %x, want %x", got, want)
	}
	if e, ok, err := ParsePark(unhex(t, "01020304 00")); err != nil || e != 0x01020304 || ok {
		t.Fatalf("parse: %x %v %v", e, ok, err)
	}
	for _, bad := range []string{"01020304", "01020304 02", "01020304 0100"} {
		if _, _, err := ParsePark(unhex(t, bad)); err == nil {
			t.Fatalf("%s parsed", bad)
		}
	}
	h := AppendHandshakeHeader(nil, HandshakeHeader{Type: TypeHandshakeInit, Version: Version, Flags: FlagParkable, Sender: 5})
	if h[2] != FlagParkable || h[3] != 0 {
		t.Fatalf("header %x: flags not in byte 2", h)
	}
	if got, err := ParseHandshakeHeader(h); err != nil || got.Flags != FlagParkable || got.Sender != 5 {
		t.Fatalf("header parse: %+v %v", got, err)
	}
}

// TestKeepaliveWire pins both keepalive payloads: the send time, then the
// observed address as 16 bytes (IPv4 mapped) and the port; a keepalive is
// its send time and zeros, as long as its answer.
func TestKeepaliveWire(t *testing.T) {
	ack := AppendKeepaliveAck(nil, 0x0102030405060708, netip.MustParseAddrPort("192.0.2.1:4500"))
	if want := unhex(t, "0102030405060708 00000000000000000000ffffc0000201 1194"); !bytes.Equal(ack, want) {
		t.Fatalf("answer %x, want %x", ack, want)
	}
	ka := AppendKeepalive(nil, 0x0102030405060708)
	if want := unhex(t, "0102030405060708 0000000000000000000000000000000000 00"); !bytes.Equal(ka, want) {
		t.Fatalf("keepalive %x, want %x", ka, want)
	}
	sent, observed, err := ParseKeepaliveAck(ack)
	if err != nil || sent != 0x0102030405060708 || observed != netip.MustParseAddrPort("192.0.2.1:4500") {
		t.Fatalf("parse: %x %v %v", sent, observed, err)
	}
	if _, _, err := ParseKeepaliveAck(ack[:25]); err == nil {
		t.Fatal("a short answer parsed")
	}
}
