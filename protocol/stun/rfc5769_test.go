package stun

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"
)

// The test vectors of RFC 5769 §2, byte for byte. Their padding is spaces
// (0x20) in places, which receivers must ignore (RFC 8489 §14).
const (
	rfc5769TxID = "b7e7a701 bc34d686 fa87dfae"

	// §2.1 Sample Request: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
	// MESSAGE-INTEGRITY (short-term, password VOkJxbRl1RmTxUk/WvJxBt),
	// FINGERPRINT.
	rfc5769Request = "0001 0058 2112a442 b7e7a701 bc34d686 fa87dfae" +
		" 8022 0010 5354554e 20746573 7420636c 69656e74" +
		" 0024 0004 6e0001ff" +
		" 8029 0008 932ff9b1 51263b36" +
		" 0006 0009 6576746a 3a683676 59202020" +
		" 0008 0014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2" +
		" 8028 0004 e57a3bcf"

	// §2.2 Sample IPv4 Response: mapped address 192.0.2.1:32853.
	rfc5769IPv4Response = "0101 003c 2112a442 b7e7a701 bc34d686 fa87dfae" +
		" 8022 000b 74657374 20766563 746f7220" +
		" 0020 0008 0001a147 e112a643" +
		" 0008 0014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7" +
		" 8028 0004 c07d4c96"

	// §2.3 Sample IPv6 Response: [2001:db8:1234:5678:11:2233:4455:6677]:32853.
	rfc5769IPv6Response = "0101 0048 2112a442 b7e7a701 bc34d686 fa87dfae" +
		" 8022 000b 74657374 20766563 746f7220" +
		" 0020 0014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9" +
		" 0008 0014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41" +
		" 8028 0004 c8fb0b4c"

	// §2.4 Sample Request with Long-Term Authentication: USERNAME (six
	// katakana), NONCE, REALM example.org, MESSAGE-INTEGRITY; no
	// FINGERPRINT. Its padding is zero, so it re-encodes byte for byte.
	rfc5769LongTerm = "0001 0060 2112a442 78ad3433 c6ad72c0 29da412e" +
		" 0006 0012 e3839ee3 8388e383 aae38383 e382afe3 82b90000" +
		" 0015 001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341" +
		" 0014 000b 6578616d 706c652e 6f726700" +
		" 0008 0014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666"
)

func TestRFC5769(t *testing.T) {
	longTermKey := md5.Sum([]byte("\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9:example.org:TheMatrIX"))
	cases := []struct {
		name        string
		hex         string
		typ         Type
		attrs       []AttrType
		fingerprint bool
		key         []byte // MESSAGE-INTEGRITY key (RFC 8489 §9.1.1, §9.2.2)
		software    string
		mapped      string
	}{
		{"request", rfc5769Request, TypeBindingRequest,
			[]AttrType{AttrSoftware, 0x0024, 0x8029, AttrUsername, AttrMessageIntegrity}, true,
			[]byte("VOkJxbRl1RmTxUk/WvJxBt"), "STUN test client", ""},
		{"ipv4-response", rfc5769IPv4Response, TypeBindingSuccess,
			[]AttrType{AttrSoftware, AttrXORMappedAddress, AttrMessageIntegrity}, true,
			[]byte("VOkJxbRl1RmTxUk/WvJxBt"), "test vector", "192.0.2.1:32853"},
		{"ipv6-response", rfc5769IPv6Response, TypeBindingSuccess,
			[]AttrType{AttrSoftware, AttrXORMappedAddress, AttrMessageIntegrity}, true,
			[]byte("VOkJxbRl1RmTxUk/WvJxBt"), "test vector", "[2001:db8:1234:5678:11:2233:4455:6677]:32853"},
		{"long-term-request", rfc5769LongTerm, TypeBindingRequest,
			[]AttrType{AttrUsername, AttrNonce, AttrRealm, AttrMessageIntegrity}, false,
			longTermKey[:], "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := unhex(t, c.hex)
			if !Is(b) {
				t.Fatal("Is: got false")
			}
			m, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != c.typ || m.Fingerprint != c.fingerprint {
				t.Errorf("got %v fingerprint=%v, want %v fingerprint=%v", m.Type, m.Fingerprint, c.typ, c.fingerprint)
			}
			var got []AttrType
			for _, a := range m.Attrs {
				got = append(got, a.Type)
			}
			if !reflect.DeepEqual(got, c.attrs) {
				t.Errorf("attributes: got %v, want %v", got, c.attrs)
			}
			if c.software != "" {
				if s, err := m.Software(); s != c.software || err != nil {
					t.Errorf("SOFTWARE: got %q, %v, want %q", s, err, c.software)
				}
			}
			if c.mapped != "" {
				if ap, err := m.XORMappedAddress(); ap != netip.MustParseAddrPort(c.mapped) || err != nil {
					t.Errorf("XOR-MAPPED-ADDRESS: got %v, %v, want %v", ap, err, c.mapped)
				}
			}
			// The codec keeps MESSAGE-INTEGRITY without checking it; check
			// it here, which pins the vectors' bytes independently of the
			// fingerprint code under test.
			if !integrityOK(b, c.key) {
				t.Error("MESSAGE-INTEGRITY of the vector does not verify: hex mistyped?")
			}
			mi, _ := m.Get(AttrMessageIntegrity)
			if len(mi) != 20 {
				t.Errorf("MESSAGE-INTEGRITY kept as %d bytes, want 20", len(mi))
			}
			again := Append(nil, m)
			m2, err := Parse(again)
			if err != nil || !reflect.DeepEqual(m2, m) {
				t.Fatalf("round trip: got %+v, %v, want %+v", m2, err, m)
			}
			if c.name == "long-term-request" && !bytes.Equal(again, b) {
				t.Errorf("re-encoded: got %x, want %x", again, b)
			}
		})
	}
}

func TestRFC5769TxID(t *testing.T) {
	m, err := Parse(unhex(t, rfc5769Request))
	if err != nil {
		t.Fatal(err)
	}
	if want := TxID(unhex(t, rfc5769TxID)); m.TxID != want {
		t.Fatalf("transaction ID: got %x, want %x", m.TxID, want)
	}
}

// integrityOK checks MESSAGE-INTEGRITY the RFC 8489 §14.5 way: HMAC-SHA1
// over the message up to the attribute, with a length field that ends
// right after it.
func integrityOK(b, key []byte) bool {
	for off := HeaderLen; off+4 <= len(b); {
		typ := AttrType(binary.BigEndian.Uint16(b[off:]))
		l := int(binary.BigEndian.Uint16(b[off+2:]))
		if typ == AttrMessageIntegrity && l == 20 && off+24 <= len(b) {
			head := append([]byte(nil), b[:off]...)
			binary.BigEndian.PutUint16(head[2:], uint16(off+24-HeaderLen))
			mac := hmac.New(sha1.New, key)
			mac.Write(head)
			return hmac.Equal(mac.Sum(nil), b[off+4:off+24])
		}
		off += 4 + padded(l)
	}
	return false
}
