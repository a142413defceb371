package admin

import (
	"bytes"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
)

// Process is the resource use of the running agent or relay: the numbers
// an operator (and the tests) watch to see a leak of goroutines, file
// descriptors or memory.
type Process struct {
	Goroutines int    `json:"goroutines"`
	OpenFDs    int    `json:"open_fds"`   // 0 where /proc/self/fd does not exist
	HeapInuse  uint64 `json:"heap_inuse"` // bytes in heap spans in use
	HeapAlloc  uint64 `json:"heap_alloc"` // bytes of heap objects, live or not yet swept
	HeapLive   uint64 `json:"heap_live"`  // bytes marked live by the last GC
	Stacks     uint64 `json:"stacks"`     // bytes of goroutine stacks
	RSS        uint64 `json:"rss"`        // resident set; 0 where /proc/self/statm does not exist
	// MemoryLimit is the Go soft memory limit in force (memory_limit or
	// GOMEMLIMIT); 0: none.
	MemoryLimit uint64 `json:"memory_limit"`
}

// processMetrics are read with runtime/metrics, which unlike
// runtime.ReadMemStats does not stop the world.
var processMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/gc/gomemlimit:bytes",
}

// ProcessStats samples the current process.
func ProcessStats() Process {
	s := make([]metrics.Sample, len(processMetrics))
	for i, name := range processMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	p := Process{
		Goroutines: runtime.NumGoroutine(),
		OpenFDs:    openFDs(),
		// objects + unused = HeapInuse of runtime.MemStats.
		HeapInuse: u(0) + u(1),
		HeapAlloc: u(0),
		HeapLive:  u(2),
		Stacks:    u(3),
		RSS:       rss(),
	}
	if l := u(4); l < math.MaxInt64 {
		p.MemoryLimit = l
	}
	return p
}

// openFDs counts the entries of /proc/self/fd (Linux), minus the one the
// listing itself holds open. (Names only: os.ReadDir would also sort them,
// and its sort alone costs about 9 KB of the mipsle binary.)
func openFDs() int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil || len(names) == 0 {
		return 0
	}
	return len(names) - 1
}

// rss reads the resident set size from /proc/self/statm (Linux): its
// second field, in pages.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
