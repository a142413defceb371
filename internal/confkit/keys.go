package confkit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pinhole/pinhole/protocol/secure"
)

// maxKeyFile bounds a key file: a key is 44 base64 characters, so anything
// much larger is the wrong file.
const maxKeyFile = 4096

// PrivateKey reads the private_key field (inline base64) or the
// private_key_file field (a file holding it; a relative path is relative
// to the config file's directory). Exactly one of them must be given.
func (m *Map) PrivateKey() secure.PrivateKey {
	inline, hasInline := m.Scalar("private_key")
	file, hasFile := m.Scalar("private_key_file")
	switch {
	case hasInline && hasFile:
		m.Errorf("private_key_file", "give private_key or private_key_file, not both")
	case hasInline:
		k, err := secure.ParsePrivateKey(inline)
		if err != nil {
			m.Errorf("private_key", "%v", err)
		}
		return k
	case hasFile:
		if !filepath.IsAbs(file) {
			file = filepath.Join(m.doc.Dir(), file)
		}
		b, err := ReadKeyFile(file)
		if err != nil {
			m.Errorf("private_key_file", "%v", err)
			return secure.PrivateKey{}
		}
		k, err := secure.ParsePrivateKey(string(b))
		if err != nil {
			m.Errorf("private_key_file", "%s: %v", file, err)
		}
		return k
	case !m.wrong && !m.Has("private_key") && !m.Has("private_key_file"):
		m.doc.Errorf(m.node, m.Path("private_key"), "is required (or private_key_file); make one with `pinhole keygen`")
	}
	return secure.PrivateKey{}
}

// PublicKey reads a required base64 public key.
func (m *Map) PublicKey(field string) secure.PublicKey {
	if m.Require(field, "base64, from `pinhole pubkey`") == nil {
		return secure.PublicKey{}
	}
	s, ok := m.Scalar(field)
	if !ok {
		return secure.PublicKey{}
	}
	k, err := secure.ParsePublicKey(s)
	if err != nil {
		m.Errorf(field, "%v", err)
	}
	return k
}

// ReadKeyFile reads a key file, refusing anything but a small regular
// file: reading a FIFO or /dev/stdin would block the agent at boot, and a
// huge file is the wrong one. The error names the path and says what to do.
func ReadKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist (make it with `pinhole keygen > %s`)", path, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s: permission denied (the user pinhole runs as must be able to read it)", path)
	case err != nil:
		return nil, fmt.Errorf("%s: %v", path, unwrapPath(err))
	case st.IsDir():
		return nil, fmt.Errorf("%s is a directory, not a key file", path)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", path)
	case st.Size() == 0:
		// Also refuses /proc files, which claim size 0; /proc/kmsg would
		// block the read.
		return nil, fmt.Errorf("%s is empty (make the key with `pinhole keygen > %s`)", path, path)
	case st.Size() > maxKeyFile:
		return nil, fmt.Errorf("%s is %d bytes, too large for a key file", path, st.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("%s: permission denied (the user pinhole runs as must be able to read it)", path)
		}
		return nil, fmt.Errorf("%s: %v", path, unwrapPath(err))
	}
	defer f.Close()
	// The file may have grown since Stat: read at most the bound.
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, unwrapPath(err))
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is too large for a key file", path)
	}
	return b, nil
}

// unwrapPath drops the "op path: " prefix of an *fs.PathError, since the
// messages above name the path already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
