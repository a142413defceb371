// Package pagetrim drops the executable's read-only pages from the
// process's resident set. The agent calls it once start-up is over and
// every minute after (cmd/pinhole/trim.go).
//
// A Go binary's code and read-only data (type descriptors, the
// function table the runtime reads to walk stacks) are file pages mapped
// from the executable. Start-up touches code and tables spread across
// nearly all of it (every package's init, config parsing, key handling,
// NAT discovery, the handshake), and the kernel maps 64 KiB of already
// cached file around each page fault (fault-around), so an idle agent on
// amd64 held 5.3 MiB of its own binary resident, three quarters of its
// RSS, of which an idle agent uses a fraction: keepalives, timers and
// the collector.
//
// Binary unmaps those pages (madvise MADV_DONTNEED on the executable's
// read-only mappings; its writable data is left alone). Nothing is lost:
// they are clean copies of the file, and whatever code runs next faults
// its pages back in, about a microsecond each from the page cache. What
// changes is what the kernel may take when memory runs short: a page no
// process maps is reclaimed before a mapped one, and executable pages a
// process maps are the last file pages it evicts, so on a router the
// start-up code no longer stands in the way of memory the rest of the
// system needs. The agent's RSS then counts what it uses while idle.
//
// Only Linux has it; elsewhere Binary does nothing.
package pagetrim
