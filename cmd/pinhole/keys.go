package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pinhole/pinhole/cmd/pinhole/internal/config"
	"github.com/pinhole/pinhole/protocol/secure"
)

func init() {
	register("keygen", command{summary: "print a new private key, or create the agent config's key file (-c)", run: runKeygen})
	register("pubkey", command{summary: "print the public key of a private key on stdin or of the agent config's key (-c)", run: runPubkey})
}

const defaultAgentConfig = "/etc/pinhole/agent.yaml"

func runKeygen(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", "keygen > key.file | keygen -c agent.yaml", stderr)
	conf := fs.StringP("config", "c", "", "create the private_key_file this agent config names if it is missing, and print its public key (nothing when it exists)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *conf != "" {
		return createAgentKey(*conf, stdout, stderr)
	}
	k, err := secure.GeneratePrivateKey()
	if err != nil {
		fmt.Fprintf(stderr, "pinhole keygen: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, k)
	return 0
}

// createAgentKey is what the init script runs before each start, as
// dropbear makes its host keys: a fresh install (or a router whose key
// file was lost) gets a key without a manual step, and the public key is
// printed once, for the relay operator.
func createAgentKey(conf string, stdout, stderr io.Writer) int {
	file, err := config.AgentKeyFile(conf)
	if err != nil {
		fmt.Fprintf(stderr, "pinhole keygen: %v\n", err)
		return 1
	}
	if file == "" {
		return 0 // private_key inline: nothing to create
	}
	if _, err := os.Lstat(file); !errors.Is(err, fs.ErrNotExist) {
		return 0 // there, or unreadable: `pinhole check` reports which
	}
	k, err := secure.GeneratePrivateKey()
	if err == nil {
		err = writeKeyFile(file, k.String()+"\n")
	}
	if pe, ok := err.(*fs.PathError); ok {
		err = pe.Err // the temporary file's name says nothing useful
	}
	if err != nil {
		fmt.Fprintf(stderr, "pinhole keygen: cannot create the agent key %s: %v\n", file, err)
		return 1
	}
	fmt.Fprintf(stdout, "created the agent key %s; public key (for the relay's agents list): %s\n", file, k.Public())
	return 0
}

// writeKeyFile writes the key beside its final name and renames it into
// place after fsync: a power cut leaves no key or a whole key, never a
// truncated one that would stop every later start.
func writeKeyFile(file, key string) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".agent-key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file mode 600: the key is never readable by others.
	if _, err = tmp.WriteString(key); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

func runPubkey(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("pubkey", "pubkey < key.file | pubkey [-c agent.yaml]", stderr)
	conf := fs.StringP("config", "c", "", "print the public key of this agent config's key (the default when stdin is a terminal: "+defaultAgentConfig+")")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *conf == "" && isTerminal(stdin) {
		*conf = defaultAgentConfig
	}
	var k secure.PrivateKey
	var err error
	if *conf != "" {
		k, err = config.AgentKey(*conf)
	} else {
		var b []byte
		if b, err = io.ReadAll(io.LimitReader(stdin, 4096)); err != nil {
			err = fmt.Errorf("read stdin: %w", err)
		} else {
			k, err = secure.ParsePrivateKey(string(b))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "pinhole pubkey: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, k.Public())
	return 0
}

// isTerminal reports whether r is a character device (an interactive
// shell's stdin), where `pinhole pubkey` would otherwise wait for input.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
