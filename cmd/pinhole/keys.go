package main

import (
	"fmt"
	"io"

	"github.com/pinhole/pinhole/protocol/secure"
)

func init() {
	register("keygen", command{summary: "print a new private key", run: runKeygen})
	register("pubkey", command{summary: "read a private key on stdin, print its public key", run: runPubkey})
}

func runKeygen(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", "keygen > key.file", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	k, err := secure.GeneratePrivateKey()
	if err != nil {
		fmt.Fprintf(stderr, "pinhole keygen: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, k)
	return 0
}

func runPubkey(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("pubkey", "pubkey < key.file", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 4096))
	if err != nil {
		fmt.Fprintf(stderr, "pinhole pubkey: read stdin: %v\n", err)
		return 1
	}
	k, err := secure.ParsePrivateKey(string(b))
	if err != nil {
		fmt.Fprintf(stderr, "pinhole pubkey: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, k.Public())
	return 0
}
