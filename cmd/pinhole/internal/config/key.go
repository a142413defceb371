package config

import (
	"path/filepath"

	"github.com/pinhole/pinhole/protocol/secure"
)

// keyMapping parses path far enough to read its key settings. Only those
// are checked: `pinhole keygen -c` and `pinhole pubkey -c` work on a
// config whose other values are still placeholders (the package's default
// agent.yaml before the relay is filled in).
func keyMapping(path string) (*collector, *mapping, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	c := &collector{file: path}
	root := parseDoc(c, data)
	if root == nil {
		return nil, nil, c.err()
	}
	return c, newMapping(c, root, ""), nil
}

// AgentKeyFile returns the private_key_file an agent config names,
// resolved against the config's directory, or "" when the key is given
// inline (private_key).
func AgentKeyFile(path string) (string, error) {
	c, m, err := keyMapping(path)
	if err != nil {
		return "", err
	}
	_, file, ok := m.scalar("private_key_file")
	if err := c.err(); err != nil || !ok {
		return "", err
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(filepath.Dir(path), file)
	}
	return file, nil
}

// AgentKey returns the private key an agent config names, inline or in
// its key file, with the same file:line errors as LoadAgent.
func AgentKey(path string) (secure.PrivateKey, error) {
	c, m, err := keyMapping(path)
	if err != nil {
		return secure.PrivateKey{}, err
	}
	k := m.privateKey(path)
	return k, c.err()
}
