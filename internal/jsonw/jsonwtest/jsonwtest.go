// Package jsonwtest checks a hand-written AppendJSON against encoding/json
// for tests: Fill sets every field of a struct (so a field added to the
// struct but not to its writer shows up), Equal compares the bytes. It is
// imported by _test.go files only, so encoding/json stays out of pinhole.
package jsonwtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/jsonw"
)

// Equal fails t unless write produces what encoding/json's Encoder
// writes for v, indented by indent ("" for compact) with HTML escaping.
func Equal(t testing.TB, v any, indent string, write func(w *jsonw.Writer)) {
	t.Helper()
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	w := jsonw.Writer{Indent: indent, HTML: true}
	write(&w)
	if got := string(w.B) + "\n"; got != want.String() {
		t.Errorf("%T differs from encoding/json's output:\n got %s\nwant %s", v, got, want.String())
	}
}

// Fill sets every field reachable from ptr to a non-zero value that
// differs from its neighbours: strings with characters JSON escapes,
// distinct numbers, times with nanoseconds, pointers allocated, slices and
// maps of two elements.
func Fill(ptr any) {
	n := 0
	fill(reflect.ValueOf(ptr).Elem(), &n)
}

var timeType = reflect.TypeOf(time.Time{})

func fill(v reflect.Value, n *int) {
	*n++
	switch {
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 11, 25, 18, 0, *n, 123456789+*n, time.FixedZone("", 3600))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d <&> \"q\" \u2028 é", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n) * -3)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n) * 1000003)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.125)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, n)
			fill(e, n)
			v.SetMapIndex(k, e)
		}
	default:
		panic(fmt.Sprintf("jsonwtest.Fill: %s is not handled", v.Type()))
	}
}
