package jsonw

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
	"unicode/utf8"
)

// stdString is encoding/json's quoting of s (the Encoder's trailing
// newline removed).
func stdString(t testing.TB, s string, html bool) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

var stringCases = []string{"", "plain", `quote " and \ backslash`, "<a href='x'>&amp;</a>", "tab\tnl\ncr\rbs\bff\f\x00\x1f\x7f",
	"caf\u00e9 \u2028 \u2029 \U0001F600", "bad \xff utf8 \xe2\x82", "\xed\xa0\x80 surrogate"}

func TestStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range stringCases {
		for _, html := range []bool{true, false} {
			if got, want := string(AppendString(nil, s, html)), stdString(t, s, html); got != want {
				t.Errorf("AppendString(%q, html=%v) = %s, want %s", s, html, got, want)
			}
		}
	}
}

func FuzzString(f *testing.F) {
	for _, s := range stringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{true, false} {
			got := AppendString(nil, s, html)
			if want := stdString(t, s, html); string(got) != want {
				t.Fatalf("AppendString(%q, html=%v) = %s, want %s", s, html, got, want)
			}
		}
		var back string
		if err := json.Unmarshal(AppendSlogString(nil, s), &back); err != nil {
			t.Fatalf("AppendSlogString(%q) is not JSON: %v", s, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("AppendSlogString(%q) decodes to %q", s, back)
		}
	})
}

func TestFloatMatchesEncodingJSON(t *testing.T) {
	for _, f := range []float64{0, 1, -1, 0.5, 12.345, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 1e20, 1e21, 123456789e15, -2.5e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, 0.1 + 0.2} {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendFloat(nil, f); string(got) != string(want) {
			t.Errorf("AppendFloat(%v) = %s, want %s", f, got, want)
		}
	}
	if got := string(AppendFloat(nil, math.NaN())); got != "null" {
		t.Errorf("AppendFloat(NaN) = %s, want null", got)
	}
}

func FuzzFloat(f *testing.F) {
	f.Add(1.5)
	f.Add(1e-9)
	f.Fuzz(func(t *testing.T, v float64) {
		want, err := json.Marshal(v)
		if err != nil {
			return // NaN, infinities
		}
		if got := AppendFloat(nil, v); string(got) != string(want) {
			t.Fatalf("AppendFloat(%v) = %s, want %s", v, got, want)
		}
	})
}

// doc exercises nesting, empty containers and every value writer.
type doc struct {
	Name  string            `json:"name"`
	Empty []int             `json:"empty"`
	Nil   []int             `json:"nil"`
	List  []inner           `json:"list"`
	Map   map[string]uint64 `json:"map"`
	When  time.Time         `json:"when"`
	Skip  string            `json:"skip,omitempty"`
	F     float64           `json:"f"`
	Flag  bool              `json:"flag"`
	N     int64             `json:"n"`
}

type inner struct {
	A string   `json:"a"`
	E struct{} `json:"e"`
}

func (d doc) write(w *Writer) {
	w.Object("")
	w.String("name", d.Name)
	w.Array("empty")
	w.End()
	w.Null("nil")
	w.Array("list")
	for _, in := range d.List {
		w.Object("")
		w.String("a", in.A)
		w.Object("e")
		w.End()
		w.End()
	}
	w.End()
	w.Object("map")
	w.Uint("k", d.Map["k"])
	w.End()
	w.Time("when", d.When)
	w.StringOmit("skip", d.Skip)
	w.Float("f", d.F)
	w.Bool("flag", d.Flag)
	w.Int("n", d.N)
	w.End()
}

func TestWriterMatchesEncoder(t *testing.T) {
	d := doc{Name: "x<y>", Empty: []int{}, List: []inner{{A: "1"}, {A: "2"}}, Map: map[string]uint64{"k": 7},
		When: time.Date(2026, 11, 25, 18, 0, 0, 123456789, time.FixedZone("", 3600)), F: 0.25, Flag: true, N: -3}
	for _, indent := range []string{"", "  ", "\t"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", indent)
		if err := enc.Encode(d); err != nil {
			t.Fatal(err)
		}
		w := Writer{Indent: indent, HTML: true}
		d.write(&w)
		if got := string(w.B) + "\n"; got != want.String() {
			t.Errorf("indent %q:\n got %s\nwant %s", indent, got, want.String())
		}
	}
}
