//go:build !linux

package pagetrim

// Binary does nothing here: only Linux has it.
func Binary() (int64, error) { return 0, nil }
