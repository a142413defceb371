package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/cmd/pinhole/internal/config"
	"github.com/pinhole/pinhole/internal/jsonw"
	"github.com/pinhole/pinhole/protocol"
)

func init() {
	register("nat", command{summary: "tell what NAT this host is behind (STUN against a relay)", run: runNAT})
}

func runNAT(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("nat", "nat (--relay HOST:PORT | -c agent.yaml) [--lifetime] [--json]", stderr)
	relay := fs.String("relay", "", "relay to probe (its UDP port answers STUN)")
	path := fs.StringP("config", "c", "", "agent config whose first relay to probe")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	lifetime := fs.Bool("lifetime", false, "also measure how long the NAT keeps an idle UDP mapping (takes minutes)")
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
	// The gateway is asked for a port mapping meanwhile, within the 3 s
	// `pinhole nat` promises (a gateway that never answers costs this).
	pmctx, pmcancel := context.WithTimeout(ctx, 2400*time.Millisecond)
	defer pmcancel()
	pmDone := make(chan string, 1)
	go func() {
		pm, err := agent.CheckPortMapping(pmctx)
		if err != nil {
			pmDone <- "none"
			return
		}
		pmDone <- pm.Protocol + " " + pm.Address.String()
	}()
	res, err := agent.CheckNAT(ctx, *relay)
	res.PortMapping = <-pmDone
	if err != nil {
		fmt.Fprintf(stderr, "pinhole nat: %v\n", err)
		return 1
	}
	var extra [][2]string
	if *lifetime && res.UDP == protocol.Yes {
		if !*asJSON {
			printNAT(stdout, res)
			fmt.Fprintln(stderr, "measuring the mapping lifetime (up to about 10 minutes)...")
		}
		// Ctrl-C stops it; the bound is the schedule's worst case.
		lctx, lcancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		lctx, lcancel2 := context.WithTimeout(lctx, 15*time.Minute)
		defer lcancel2()
		l, err := agent.MeasureLifetime(lctx, *relay, agent.LifetimeSchedule{})
		lcancel()
		extra = append(extra, [2]string{"mapping lifetime", lifetimeWords(l, err)})
		if !*asJSON {
			printLines(stdout, extra)
		}
	} else if !*asJSON {
		printNAT(stdout, res)
	}
	if *asJSON {
		m := natJSON(res)
		for _, l := range extra {
			m[l[0]] = l[1]
		}
		writeJSONLine(stdout, m)
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
		{"port mapping", res.PortMapping},
	}
}

func printNAT(w io.Writer, res agent.NATResult) { printLines(w, natLines(res)) }

func printLines(w io.Writer, lines [][2]string) {
	for _, l := range lines {
		// Values line up at column 18; a longer key keeps one space.
		fmt.Fprintf(w, "%-*s%s\n", max(17, len(l[0])+2), l[0]+":", l[1])
	}
}

// lifetimeWords is the "mapping lifetime" line: whole seconds, a lower
// bound (the longest delayed answer that got through).
func lifetimeWords(l time.Duration, err error) string {
	switch {
	case errors.Is(err, agent.ErrShortLifetime):
		return fmt.Sprintf("under %d s", int(agent.LifetimeSchedule{}.Shortest().Seconds()))
	case err != nil:
		return "unknown (" + err.Error() + ")"
	}
	return fmt.Sprintf("%d s", int(l.Seconds()))
}

func natJSON(res agent.NATResult) map[string]string {
	m := map[string]string{"relay": res.Relay.String()}
	for _, l := range natLines(res) {
		m[l[0]] = l[1]
	}
	return m
}

// writeJSONLine writes m as json.NewEncoder(w).Encode(m) does: compact,
// keys sorted, HTML characters escaped, a newline after.
func writeJSONLine(out io.Writer, m map[string]string) {
	w := jsonw.Writer{HTML: true}
	w.Strings("", m)
	out.Write(append(w.B, '\n'))
}
