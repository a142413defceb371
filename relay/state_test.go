package relay

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestStateFileRoundTrip: entries written are read back; a missing file is
// an empty state; lines that do not parse are skipped; a file that is not
// a state file is refused (the relay then invites nobody).
func TestStateFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.state")
	if got, err := readState(path); err != nil || got != nil {
		t.Fatalf("missing file: %v, %v", got, err)
	}
	want := []stateEntry{{netip.MustParseAddrPort("198.51.100.7:40000"), 7}, {netip.MustParseAddrPort("[2001:db8::1]:5"), 4294967295}}
	if err := writeState(path, encodeState(want)); err != nil {
		t.Fatal(err)
	}
	got, err := readState(path)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %v, %v; want %v", got, err, want)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".relay-state-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	os.WriteFile(path, []byte(stateHeader+"\nnot an address 1\n198.51.100.7:1 99999999999\n198.51.100.7:2 3\n"), 0o600)
	if got, err := readState(path); err != nil || len(got) != 1 || got[0].index != 3 {
		t.Fatalf("garbage lines: got %v, %v; want only the good one", got, err)
	}
	os.WriteFile(path, []byte("something else\n"), 0o600)
	if _, err := readState(path); err == nil {
		t.Fatal("a file without the header was accepted")
	}
}
