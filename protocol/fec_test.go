package protocol

import (
	"bytes"
	"testing"
)

func TestParityRoundTrip(t *testing.T) {
	want := Parity{Base: 77, Offsets: []uint8{0, 2, 3, 250}, Shards: 3, Index: 2, Shard: []byte{0, 4, 9, 9, 9, 9}}
	b := append(AppendParityHeader(nil, want), want.Shard...)
	got, err := ParseParity(b)
	if err != nil || got.Base != want.Base || !bytes.Equal(got.Offsets, want.Offsets) || got.Shards != 3 || got.Index != 2 || !bytes.Equal(got.Shard, want.Shard) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestParityMalformed(t *testing.T) {
	good := append(AppendParityHeader(nil, Parity{Base: 1, Offsets: []uint8{0, 1}, Shards: 2}), 0, 1, 2)
	for name, mut := range map[string]func(b []byte) []byte{
		"short":              func(b []byte) []byte { return b[:ParityHeaderLen-1] },
		"no data":            func(b []byte) []byte { b[8] = 0; return b },
		"too many data":      func(b []byte) []byte { b[8] = MaxParityData + 1; return b },
		"no parity":          func(b []byte) []byte { b[9] = 0; return b },
		"index out of range": func(b []byte) []byte { b[10] = 2; return b },
		"first offset not 0": func(b []byte) []byte { b[ParityHeaderLen] = 1; return b },
		"offsets not rising": func(b []byte) []byte { b[ParityHeaderLen+1] = 0; return b },
		"shard too short":    func(b []byte) []byte { return b[:len(b)-1] },
	} {
		if _, err := ParseParity(mut(append([]byte(nil), good...))); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if _, err := ParseParity(good); err != nil {
		t.Fatal(err)
	}
}

func TestLossReport(t *testing.T) {
	exp, got, err := ParseLossReport(AppendLossReport(nil, 1000, 990))
	if err != nil || exp != 1000 || got != 990 {
		t.Fatalf("got %d of %d, %v", got, exp, err)
	}
	if _, _, err := ParseLossReport(AppendLossReport(nil, 5, 6)); err == nil {
		t.Fatal("more received than sent parsed")
	}
	if _, _, err := ParseLossReport(make([]byte, 7)); err == nil {
		t.Fatal("short report parsed")
	}
}
