package pagetrim

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"testing"
)

// written is in the binary's initialised writable data (a file-backed
// private mapping) and changed at run time: a trim that dropped writable
// pages would turn it back into the file's 1.
var written int64 = 1

// TestBinaryDropsResidentPages: after Binary the executable's read-only
// mappings hold fewer resident pages, the test (running from them) goes
// on, and data the process wrote keeps its value.
func TestBinaryDropsResidentPages(t *testing.T) {
	written = 0x5eed
	before := residentKiB(t)
	advised, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	after := residentKiB(t)
	t.Logf("read-only mappings of the executable: %d KiB resident before, %d after (%d KiB advised)", before, after, advised>>10)
	if advised == 0 || after >= before {
		t.Fatalf("resident %d KiB before, %d after, %d bytes advised: nothing dropped", before, after, advised)
	}
	if written != 0x5eed {
		t.Fatalf("a written variable reads %#x after the trim", written)
	}
}

// residentKiB sums the Rss of the executable's read-only mappings.
func residentKiB(t *testing.T) int {
	exe, err := executableInode()
	if err != nil {
		t.Fatal(err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	total, ours := 0, false
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Bytes()
		if m, ok := parseMapping(line); ok {
			ours = m.trimmed(exe)
			continue
		}
		if f := bytes.Fields(line); ours && len(f) == 3 && string(f[0]) == "Rss:" {
			kb, _ := strconv.Atoi(string(f[1]))
			total += kb
		}
	}
	return total
}

func TestParseMapping(t *testing.T) {
	for _, c := range []struct {
		line string
		want mapping
		ok   bool
	}{
		{"00400000-00a3a000 r-xp 00000000 fd:01 1837 /usr/bin/pinhole", mapping{0x400000, 0xa3a000, false, 1837}, true},
		{"00e2d000-00e5a000 rw-p 00a2d000 08:02 1837 /usr/bin/pinhole (deleted)", mapping{0xe2d000, 0xe5a000, true, 1837}, true},
		{"c000000000-c000400000 rw-p 00000000 00:00 0 ", mapping{0xc000000000, 0xc000400000, true, 0}, true},
		{"Rss:                 132 kB", mapping{}, false},
		{"0040-0030 r-xp 00000000 fd:01 1837 /x", mapping{}, false},
	} {
		got, ok := parseMapping([]byte(c.line))
		if ok != c.ok || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}
