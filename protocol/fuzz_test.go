package protocol

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzControl decodes arbitrary frames: no panic, and whatever decodes
// re-encodes to a frame that decodes to the same message.
func FuzzControl(f *testing.F) {
	for _, c := range controlCases {
		f.Add(unhex(f, c.hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadMessage(bytes.NewReader(b))
		if err != nil {
			return
		}
		again, err := AppendFrame(nil, m)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", m, err)
		}
		m2, err := ReadMessage(bytes.NewReader(again))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %#v: got %#v, %v", m, m2, err)
		}
	})
}

// FuzzStreamHeader decodes arbitrary stream headers.
func FuzzStreamHeader(f *testing.F) {
	f.Add(unhex(f, "0014 01 01 03776562 04 c6336409 c738 04 cb007101 0050"))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ReadStreamHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		h2, err := ReadStreamHeader(bytes.NewReader(AppendStreamHeader(nil, h)))
		if err != nil || h2 != h {
			t.Fatalf("round trip of %+v: got %+v, %v", h, h2, err)
		}
	})
}

// FuzzDatagram runs every datagram header parser over arbitrary input.
func FuzzDatagram(f *testing.F) {
	f.Add(unhex(f, "a3000000 01020304 0000000000000005"))
	f.Add(AppendRefuse(nil, Refuse{Code: RefuseVersion, Version: 1}))
	f.Add(AppendHandshakeHeader(nil, HandshakeHeader{Type: TypeHandshakeInit, Version: 1, Sender: 3}))
	f.Add(append(AppendCookieHeader(nil, CookieHeader{Reason: CookieLoad, Receiver: 4}), make([]byte, CookieReplyLen-CookieHeaderLen)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, err := Classify(b)
		if err != nil {
			return
		}
		_, _ = ReceiverIndex(typ, b)
		switch typ {
		case TypeCookie:
			if h, err := ParseCookieHeader(b); err == nil && !bytes.Equal(AppendCookieHeader(nil, h), b[:CookieHeaderLen]) && b[2]|b[3] == 0 {
				t.Fatalf("cookie header %x does not round trip", b[:CookieHeaderLen])
			}
		case TypeData:
			if h, err := ParseDataHeader(b); err == nil && !bytes.Equal(AppendDataHeader(nil, h), b[:DataHeaderLen]) && b[2]|b[3] == 0 {
				t.Fatalf("data header %x does not round trip", b[:DataHeaderLen])
			}
		case TypeRefuse:
			_, _ = ParseRefuse(b)
		default:
			_, _ = ParseHandshakeHeader(b)
		}
	})
}
