package jsonvalue

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// cases are documents with their encoding/json verdicts worked out by
// agreeing with it: valid, invalid, and the corners of strings and numbers.
var cases = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5`, `-12e3`, `1E+2`, `2e-2`, `"s"`,
	` { "a" : [ 1 , "x" , null , true , false , { } , [ ] ] } `,
	"\t\r\n{\"a\":1}\n",
	`{"a":1,"a":2}`,
	`{"role":"agent","connected":true,"rtt_ms":12.5,"nat":{"lifetime_s":30},"exposures":[{"name":"web","status":"ok"}]}`,
	`"\" \\ \/ \b \f \n \r \t"`,
	`"\u00e9\u20AC\ud83d\ude00"`,
	`"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`, `"\ud83dx"`, `"\ud83d\ud83d\ude00"`, `"\ud83d\"`,
	"\"caf\xc3\xa9\"", "\"bad \xff byte\"", "\"cut \xe2\x82\"", "\"\xef\xbf\xbd\"",
	`123456789012345678901234567890`, `1e308`, `1e309`, `-1e400`, `4.9e-324`, `1e-400`,
	``, ` `, `{`, `}`, `[`, `[1,]`, `[,1]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{a:1}`, `{'a':1}`, `{"a" 1}`,
	`[1 2]`, `{"a":1 "b":2}`, `{} {}`, `1 2`, `nul`, `nulll`, `True`, `tru`, `01`, `-`, `-a`, `1.`, `.5`, `1e`, `1e+`,
	`+1`, `0x10`, `Infinity`, `NaN`, `"\x"`, `"\u12"`, `"\u12g4"`, `"abc`, "\"a\nb\"", "\"a\x00b\"", "\"a\x1fb\"",
	`"\`, "\xef\xbb\xbf{}", "{}\x00", `[1,[2,[3,[4]]]]`,
}

func TestParseMatchesEncodingJSON(t *testing.T) {
	for _, doc := range cases {
		compare(t, []byte(doc))
	}
}

// compare checks Parse and Object against json.Unmarshal into an any and
// into a map[string]any: both must accept or refuse, with equal values.
func compare(t *testing.T, doc []byte) {
	t.Helper()
	var want any
	werr := json.Unmarshal(doc, &want)
	got, gerr := Parse(doc)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: Parse error %v, encoding/json error %v", doc, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: Parse gives %#v, encoding/json %#v", doc, got, want)
	}

	var wantMap map[string]any
	werr = json.Unmarshal(doc, &wantMap)
	gotMap, gerr := Object(doc)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: Object error %v, encoding/json error %v", doc, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(gotMap, wantMap) {
		t.Fatalf("%q: Object gives %#v, encoding/json %#v", doc, gotMap, wantMap)
	}
}

func TestObjectRefusesOtherValues(t *testing.T) {
	for _, doc := range []string{`[]`, `1`, `"x"`, `true`} {
		if _, err := Object([]byte(doc)); !errors.Is(err, ErrNotObject) {
			t.Errorf("Object(%s) = %v, want ErrNotObject", doc, err)
		}
	}
	m, err := Object([]byte(`null`))
	if m != nil || err != nil {
		t.Errorf("Object(null) = %v, %v; want nil, nil", m, err)
	}
}

// TestDepth: 10000 levels of nesting are accepted and one more refused,
// like encoding/json, without exhausting the stack.
func TestDepth(t *testing.T) {
	for _, n := range []int{maxDepth, maxDepth + 1} {
		doc := []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
		compare(t, doc)
		doc = []byte(strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n))
		compare(t, doc)
	}
	if _, err := Parse([]byte(strings.Repeat("[", 1<<20))); err == nil {
		t.Fatal("a million open brackets accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, doc := range cases {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		compare(t, doc)
	})
}
