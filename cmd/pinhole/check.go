package main

import (
	"bytes"
	"fmt"
	"io"

	"github.com/pinhole/pinhole/cmd/pinhole/internal/config"
	"gopkg.in/yaml.v3"
)

func init() {
	register("check", command{summary: "validate a config file without touching the network", run: runCheck})
}

func runCheck(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "check -c FILE [--role agent|relay]", stderr)
	path := fs.StringP("config", "c", "", "config file to check")
	role := fs.String("role", "", "agent or relay (default: guessed from the file: relays -> agent, agents -> relay)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "pinhole check: -c FILE is required")
		return 2
	}
	data, err := config.ReadFile(*path)
	if err != nil {
		fmt.Fprintf(stderr, "pinhole check: %v\n", err)
		return 1
	}
	if *role == "" {
		*role = guessRole(data)
	}
	switch *role {
	case "agent":
		f, err := config.ParseAgent(*path, data)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok (agent %q, %d relays, %d exposures)\n", *path, f.Agent.Name, len(f.Agent.Relays), len(f.Agent.Expose))
	case "relay":
		f, err := config.ParseRelay(*path, data)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok (relay on %s, %d agents)\n", *path, f.Relay.Listen, len(f.Relay.Agents))
	default:
		fmt.Fprintf(stderr, "pinhole check: %s: cannot tell agent from relay config (no relays: or agents: list); use --role\n", *path)
		return 1
	}
	return 0
}

// guessRole looks at the top-level keys only.
func guessRole(data []byte) string {
	var top map[string]yaml.Node
	if yaml.NewDecoder(bytes.NewReader(data)).Decode(&top) != nil {
		return ""
	}
	_, hasRelays := top["relays"]
	_, hasAgents := top["agents"]
	switch {
	case hasRelays && !hasAgents:
		return "agent"
	case hasAgents && !hasRelays:
		return "relay"
	}
	return ""
}
