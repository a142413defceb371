package pagetrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Binary unmaps the resident pages of the executable's read-only
// mappings and returns how many bytes of mappings it advised. Pages in
// use fault back in as they are touched.
func Binary() (int64, error) {
	exe, err := executableInode()
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	var total int64
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		m, ok := parseMapping(sc.Bytes())
		if !ok || !m.trimmed(exe) {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); e != 0 {
			return total, fmt.Errorf("madvise %#x-%#x: %w", m.start, m.end, e)
		}
		total += int64(m.end - m.start)
	}
	return total, sc.Err()
}

// executableInode returns the inode of the running executable's file.
func executableInode() (uint64, error) {
	var exe unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &exe); err != nil {
		return 0, err
	}
	return uint64(exe.Ino), nil
}

// trimmed reports whether Binary drops m's pages: a read-only mapping of
// the executable (inode exe).
func (m mapping) trimmed(exe uint64) bool { return !m.writable && m.inode == exe }

// mapping is one line of /proc/self/maps, the fields Binary needs.
type mapping struct {
	start, end uintptr
	writable   bool
	inode      uint64 // 0: anonymous
}

// parseMapping reads "start-end perms offset device inode [path]". The
// executable's mappings are the ones with its inode: a static Go binary
// maps no other file (the device is not compared: stat's encoding of it
// differs between 32- and 64-bit targets).
func parseMapping(line []byte) (mapping, bool) {
	f := bytes.Fields(line)
	if len(f) < 5 || len(f[1]) < 2 {
		return mapping{}, false
	}
	lo, hi, ok := bytes.Cut(f[0], []byte("-"))
	if !ok {
		return mapping{}, false
	}
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	ino, err3 := strconv.ParseUint(string(f[4]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || end <= start {
		return mapping{}, false
	}
	return mapping{start: uintptr(start), end: uintptr(end), writable: f[1][1] == 'w', inode: ino}, true
}
