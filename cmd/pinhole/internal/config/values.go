package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
	"gopkg.in/yaml.v3"
)

// scalar returns the string of a scalar node, reporting other kinds.
func (m *mapping) scalar(name string) (*yaml.Node, string, bool) {
	v := m.get(name)
	if v == nil {
		return nil, "", false
	}
	if v.Kind != yaml.ScalarNode {
		m.c.add(v, m.sub(name), "must be a single value")
		return v, "", false
	}
	return v, v.Value, true
}

func (m *mapping) str(name, def string) string {
	if _, s, ok := m.scalar(name); ok {
		return s
	}
	return def
}

// name reads a required identifier (agent or exposure name).
func (m *mapping) name(field string) string {
	if m.require(field) == nil {
		return ""
	}
	n, s, _ := m.scalar(field)
	if s != "" && !protocol.ValidName(s) {
		m.c.add(n, m.sub(field), "%q must be 1-63 letters, digits, '.', '_' or '-'", s)
	}
	return s
}

// names reads an optional list of identifiers (agent names).
func (m *mapping) names(field string) []string {
	var out []string
	for i, n := range m.sequence(field) {
		path := fmt.Sprintf("%s[%d]", m.sub(field), i)
		switch {
		case n.Kind != yaml.ScalarNode:
			m.c.add(n, path, "must be a name")
		case !protocol.ValidName(n.Value):
			m.c.add(n, path, "%q must be 1-63 letters, digits, '.', '_' or '-'", n.Value)
		default:
			out = append(out, n.Value)
		}
	}
	return out
}

func (m *mapping) integer(name string, def, lo, hi int) int {
	n, s, ok := m.scalar(name)
	if !ok {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		m.c.add(n, m.sub(name), "%q is not a whole number", s)
		return def
	}
	if v < lo || v > hi {
		m.c.add(n, m.sub(name), "%d is out of range (%d-%d)", v, lo, hi)
		return def
	}
	return v
}

func (m *mapping) port(name string, required bool) uint16 {
	if required && m.require(name) == nil {
		return 0
	}
	return uint16(m.integer(name, 0, 1, 65535))
}

func (m *mapping) boolean(name string, def bool) bool {
	n, s, ok := m.scalar(name)
	if !ok {
		return def
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true
	case "false", "no", "off":
		return false
	}
	m.c.add(n, m.sub(name), "%q is not true or false", s)
	return def
}

func (m *mapping) duration(name string, def, lo, hi time.Duration) time.Duration {
	n, s, ok := m.scalar(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		m.c.add(n, m.sub(name), "%q is not a duration (examples: 15s, 2m, 1h)", s)
		return def
	}
	if d < lo || d > hi {
		m.c.add(n, m.sub(name), "%v is out of range (%v-%v)", d, lo, hi)
		return def
	}
	return d
}

// enum reads one of the allowed words.
func (m *mapping) enum(name, def string, allowed ...string) string {
	n, s, ok := m.scalar(name)
	if !ok {
		return def
	}
	if !contains(allowed, s) {
		m.c.add(n, m.sub(name), "%q is not one of %s", s, strings.Join(allowed, ", "))
		return def
	}
	return s
}

// size reads a byte size: 24MiB, 64MB, 512KiB, a plain number of bytes,
// or "off" (0).
func (m *mapping) size(name string, def int64) int64 {
	n, s, ok := m.scalar(name)
	if !ok {
		return def
	}
	if s == "off" {
		return 0
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}, {"", 1}}
	for _, u := range units {
		if num, found := strings.CutSuffix(s, u.suffix); found {
			v, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
			if err == nil && v >= 0 {
				return v * u.mult
			}
			break
		}
	}
	m.c.add(n, m.sub(name), "%q is not a size (examples: 24MiB, 64MB, off)", s)
	return def
}

// hostPort checks host:port syntax without any lookup. defPort is used
// when the port is omitted (0: a port is required).
func (m *mapping) hostPort(name string, required bool, defPort int) string {
	if required && m.require(name) == nil {
		return ""
	}
	n, s, ok := m.scalar(name)
	if !ok {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil && defPort > 0 && !strings.Contains(strings.TrimPrefix(strings.TrimSuffix(s, "]"), "["), ":") {
		host, port, err = s, strconv.Itoa(defPort), nil
	}
	if err != nil {
		m.c.add(n, m.sub(name), "%q is not host:port", s)
		return ""
	}
	p, perr := strconv.Atoi(port)
	if perr != nil || p < 1 || p > 65535 {
		m.c.add(n, m.sub(name), "port %q out of range (1-65535)", port)
		return ""
	}
	if host == "" {
		m.c.add(n, m.sub(name), "%q has no host", s)
		return ""
	}
	return net.JoinHostPort(host, port)
}

// listenAddr is like hostPort but allows an empty host (all addresses)
// and port 0.
func (m *mapping) listenAddr(name, def string) string {
	n, s, ok := m.scalar(name)
	if !ok {
		return def
	}
	host, port, err := net.SplitHostPort(s)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < 0 || p > 65535 {
		m.c.add(n, m.sub(name), "%q is not a listen address like 0.0.0.0:7700", s)
		return def
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			m.c.add(n, m.sub(name), "%q: listen host must be an IP address", s)
			return def
		}
	}
	return s
}

// admin reads an admin endpoint: a loopback address, a unix socket path,
// or "off".
func (m *mapping) admin(name, def string, allowRemote bool) string {
	n, s, ok := m.scalar(name)
	if !ok {
		return def
	}
	if s == "off" {
		return ""
	}
	if strings.HasPrefix(s, "/") {
		return s
	}
	host, port, err := net.SplitHostPort(s)
	ip, ierr := netip.ParseAddr(host)
	if _, perr := strconv.Atoi(port); err != nil || perr != nil {
		m.c.add(n, m.sub(name), "%q is not host:port, a unix socket path or off", s)
		return def
	}
	if !allowRemote && (ierr != nil || !ip.IsLoopback()) {
		m.c.add(n, m.sub(name), "%q must be a loopback address (the status endpoint has no authentication)", s)
		return def
	}
	return s
}

// privateKey reads private_key or private_key_file (exactly one). A
// relative file path is relative to the config file's directory.
func (m *mapping) privateKey(configPath string) secure.PrivateKey {
	inlineN, inline, hasInline := m.scalar("private_key")
	fileN, file, hasFile := m.scalar("private_key_file")
	switch {
	case hasInline && hasFile:
		m.c.add(fileN, "private_key_file", "give private_key or private_key_file, not both")
	case hasInline:
		k, err := secure.ParsePrivateKey(inline)
		if err != nil {
			m.c.add(inlineN, "private_key", "%v", err)
		}
		return k
	case hasFile:
		if !filepath.IsAbs(file) {
			file = filepath.Join(filepath.Dir(configPath), file)
		}
		b, err := readKeyFile(file)
		if err != nil {
			m.c.add(fileN, "private_key_file", "%v", err)
			return secure.PrivateKey{}
		}
		k, err := secure.ParsePrivateKey(string(b))
		if err != nil {
			m.c.add(fileN, "private_key_file", "%s: %v", file, err)
		}
		return k
	default:
		m.c.add(m.node, "private_key", "is required (or private_key_file); make one with `pinhole keygen`")
	}
	return secure.PrivateKey{}
}

func (m *mapping) publicKey(name string) secure.PublicKey {
	if m.require(name) == nil {
		return secure.PublicKey{}
	}
	n, s, _ := m.scalar(name)
	k, err := secure.ParsePublicKey(s)
	if err != nil {
		m.c.add(n, m.sub(name), "%v", err)
	}
	return k
}

// parseDoc decodes the file into its root mapping node. A config is one
// YAML document: anything after a "---" would otherwise be silently ignored.
func parseDoc(c *collector, data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			c.errs = append(c.errs, &Error{File: c.file, Line: 1, Msg: "the file is empty"})
			return nil
		}
		c.errs = append(c.errs, yamlError(c.file, err))
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		c.errs = append(c.errs, yamlError(c.file, err))
		return nil
	default:
		c.errs = append(c.errs, &Error{File: c.file, Line: next.Line, Msg: "a second YAML document (after ---): a config file holds one"})
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		c.errs = append(c.errs, &Error{File: c.file, Line: 1, Msg: "the file is empty"})
		return nil
	}
	return doc.Content[0]
}

// yamlError turns a yaml.v3 syntax error into a file:line error.
func yamlError(file string, err error) *Error {
	line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
	if n, rest, ok := splitLinePrefix(msg); ok {
		line, msg = n, rest
	}
	return &Error{File: file, Line: line, Msg: "not valid YAML: " + msg}
}

// splitLinePrefix splits a yaml.v3 message of the form "line N: text" (one
// line of text, N decimal digits) into N and text. An N too large for an
// int is read as strconv.Atoi reads it, as before.
func splitLinePrefix(msg string) (int, string, bool) {
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, "", false
	}
	num, text, ok := strings.Cut(rest, ": ")
	if !ok || num == "" || strings.IndexByte(text, '\n') >= 0 {
		return 0, "", false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, "", false
		}
	}
	n, _ := strconv.Atoi(num)
	return n, text, true
}

// maxKeyFile bounds a key file: a key is 44 base64 characters, so anything
// much larger is the wrong file.
const maxKeyFile = 4096

// readKeyFile reads a key file, refusing anything but a small regular file:
// reading a FIFO or /dev/stdin would block the agent at boot, and so would
// files such as /proc/kmsg, which claim size 0 and never end.
func readKeyFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist (make it with `pinhole keygen > %s`)", path, path)
	}
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxKeyFile {
		return nil, fmt.Errorf("%s is %d bytes, too large for a key file", path, st.Size())
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s is empty; a key file holds the 44-character key `pinhole keygen` prints", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxKeyFile))
}
