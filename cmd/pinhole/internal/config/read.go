package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// maxConfigFile bounds a config file. The example configs are about 3 KiB
// and a relay listing a thousand agents stays under 200 KiB; anything past
// 1 MiB is the wrong file. Without the bound `pinhole check -c /dev/zero`
// grew to 3.6 GB, and a 50 MB comment-only file kept a running agent at
// 341 MB (yaml.v3 holds the whole document and its tokens in memory).
const maxConfigFile = 1 << 20

// ReadFile reads a config file, refusing anything but a regular file of
// at most maxConfigFile bytes before a byte is parsed. Devices, FIFOs and
// /proc files would block or never end; Stat is checked before Open (opening
// a FIFO blocks) and again on the open file, and the read itself is capped in
// case the file grows in between.
func ReadFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if err := checkConfigInfo(path, st); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if err := checkConfigInfo(path, st); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("%s: %w", path, ErrTooLarge)
	}
	return data, nil
}

// ErrNotRegular and ErrTooLarge let callers tell a refused file from a
// syntax error.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("larger than the 1 MiB limit for a config file")
)

func checkConfigInfo(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, fileKind(st.Mode()))
	}
	if st.Size() > maxConfigFile {
		return fmt.Errorf("%s: %d bytes, %w", path, st.Size(), ErrTooLarge)
	}
	return nil
}

// fileKind names a non-regular file type for the error message.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.Type().String()
}
