package admin

import "github.com/pinhole/pinhole/internal/jsonw"

// WriteJSON writes p as encoding/json would (see Document).
func (p Process) WriteJSON(w *jsonw.Writer, key string) {
	w.Object(key)
	w.Int("goroutines", int64(p.Goroutines))
	w.Int("open_fds", int64(p.OpenFDs))
	w.Uint("heap_inuse", p.HeapInuse)
	w.Uint("heap_alloc", p.HeapAlloc)
	w.Uint("heap_live", p.HeapLive)
	w.Uint("stacks", p.Stacks)
	w.Uint("rss", p.RSS)
	w.Uint("memory_limit", p.MemoryLimit)
	w.End()
}
