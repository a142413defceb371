package admin

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"testing"

	"github.com/pinhole/pinhole/internal/jsonw"
	"github.com/pinhole/pinhole/internal/jsonw/jsonwtest"
)

// TestProcessStats: the numbers are plausible for this process, and the
// status endpoint carries them as JSON fields.
func TestProcessStats(t *testing.T) {
	p := ProcessStats()
	if p.Goroutines < 1 || p.HeapInuse == 0 || p.HeapAlloc == 0 || p.Stacks == 0 {
		t.Errorf("implausible: %+v", p)
	}
	if runtime.GOOS == "linux" && (p.OpenFDs < 3 || p.RSS < 1<<20) {
		t.Errorf("on Linux want at least stdin/out/err open and 1 MiB resident: %+v", p)
	}
	ln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, ln, func() Document { return processDoc{ProcessStats()} })
	doc, err := Fetch(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Process map[string]float64 `json:"process"`
	}
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	for _, k := range []string{"goroutines", "open_fds", "heap_inuse", "heap_alloc", "heap_live", "stacks", "rss"} {
		if _, ok := got.Process[k]; !ok {
			t.Errorf("status document lacks process.%s:\n%s", k, doc)
		}
	}
}

type processDoc struct {
	Process Process `json:"process"`
}

func (d processDoc) WriteJSON(w *jsonw.Writer, key string) {
	w.Object(key)
	d.Process.WriteJSON(w, "process")
	w.End()
}

// TestProcessJSON: Process writes what encoding/json writes for it, with
// every field set and with none.
func TestProcessJSON(t *testing.T) {
	var filled processDoc
	jsonwtest.Fill(&filled)
	for _, d := range []processDoc{filled, {}} {
		jsonwtest.Equal(t, d, "  ", func(w *jsonw.Writer) { d.WriteJSON(w, "") })
	}
}

// TestOpenFDsCountsExactly: opening files raises the count by exactly as
// many, so the listing's own descriptor is not counted.
func TestOpenFDsCountsExactly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/self/fd is Linux only")
	}
	before := openFDs()
	var files []*os.File
	for range 5 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	after := openFDs()
	for _, f := range files {
		f.Close()
	}
	if after-before != len(files) {
		t.Errorf("opened %d files: count went from %d to %d", len(files), before, after)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := openFDs(), len(ents)-1; got != want {
		t.Errorf("openFDs() = %d, /proc/self/fd lists %d entries besides the listing's own", got, want)
	}
}
