package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/cmd/pinhole/internal/config"
	"github.com/pinhole/pinhole/protocol"
)

func init() {
	register("nat", command{summary: "tell what NAT this host is behind (STUN against a relay)", run: runNAT})
}

func runNAT(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("nat", "nat (--relay HOST:PORT | -c agent.yaml) [--json]", stderr)
	relay := fs.String("relay", "", "relay to probe (its UDP port answers STUN)")
	path := fs.StringP("config", "c", "", "agent config whose first relay to probe")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if (*relay == "") == (*path == "") {
		fmt.Fprintln(stderr, "pinhole nat: give --relay HOST:PORT or -c agent.yaml")
		return 2
	}
	if *path != "" {
		f, err := config.LoadAgent(*path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		*relay = f.Agent.Relays[0].Address
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := agent.CheckNAT(ctx, *relay)
	if err != nil {
		fmt.Fprintf(stderr, "pinhole nat: %v\n", err)
		return 1
	}
	if *asJSON {
		json.NewEncoder(stdout).Encode(natJSON(res))
	} else {
		printNAT(stdout, res)
	}
	if res.UDP != protocol.Yes && res.TCP != protocol.Yes {
		fmt.Fprintf(stderr, "pinhole nat: relay %s unreachable over udp and tcp\n", res.Relay)
		return 1
	}
	return 0
}

// natLines are the facts `pinhole nat` prints, one per line, in the words
// scripts grep for.
func natLines(res agent.NATResult) [][2]string {
	if res.UDP != protocol.Yes {
		tcp := "tcp fallback ok"
		if res.TCP != protocol.Yes {
			tcp = "tcp blocked too"
		}
		return [][2]string{{"udp", "blocked (" + tcp + ")"}}
	}
	hairpin := res.Hairpin.String()
	return [][2]string{
		{"udp", "ok"},
		{"public address", res.Public.String()},
		{"mapping", res.Mapping.String()},
		{"filtering", res.Filtering.String()},
		{"port allocation", res.PortsString()},
		{"hairpinning", hairpin},
		{"nat type", res.Classic()},
		// Port mapping (UPnP IGD, NAT-PMP, PCP) is not built yet: say so
		// rather than print "none", which would claim a check.
		{"port mapping", "not checked"},
	}
}

func printNAT(w io.Writer, res agent.NATResult) {
	for _, l := range natLines(res) {
		fmt.Fprintf(w, "%-17s%s\n", l[0]+":", l[1])
	}
}

func natJSON(res agent.NATResult) map[string]string {
	m := map[string]string{"relay": res.Relay.String()}
	for _, l := range natLines(res) {
		m[l[0]] = l[1]
	}
	return m
}
