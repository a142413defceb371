package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pinhole/pinhole/cmd/pinhole/internal/jsonvalue"
	"github.com/pinhole/pinhole/internal/admin"
)

func init() {
	register("status", command{summary: "show what the running agent or relay is doing", run: runStatus})
}

func runStatus(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "status [--admin ADDR] [--json]", stderr)
	addr := fs.String("admin", "127.0.0.1:7702", "admin endpoint of the running agent (relay: 127.0.0.1:7701)")
	raw := fs.Bool("json", false, "print the raw JSON document")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	doc, err := admin.Fetch(ctx, *addr)
	if err != nil {
		fmt.Fprintf(stderr, "pinhole status: %v\n", err)
		return 1
	}
	if *raw {
		stdout.Write(doc)
		return 0
	}
	st, err := jsonvalue.Object(doc)
	if err != nil {
		fmt.Fprintf(stderr, "pinhole status: bad answer from %s: %v\n", *addr, err)
		return 1
	}
	printStatus(stdout, st)
	return 0
}

// printStatus renders the status document for a person.
func printStatus(w io.Writer, st map[string]any) {
	str := func(m map[string]any, k string) string {
		if v, ok := m[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return "-"
	}
	switch st["role"] {
	case "agent":
		fmt.Fprintf(w, "agent %s\n", str(st, "name"))
		if st["connected"] == true {
			fmt.Fprintf(w, "  relay       %s via %s (%s), rtt %s ms\n", str(st, "relay"), str(st, "transport"), str(st, "relay_addr"), str(st, "rtt_ms"))
			fmt.Fprintf(w, "  public addr %s (as the relay sees us)\n", str(st, "public_addr"))
			fmt.Fprintf(w, "  since       %s\n", str(st, "connected_since"))
		} else {
			fmt.Fprintf(w, "  not connected; last error: %s\n", str(st, "last_error"))
		}
		fmt.Fprintf(w, "  udp socket  %s\n", str(st, "udp_socket"))
		if hb, ok := st["heartbeat_s"].(float64); ok {
			mode := "fixed"
			if st["heartbeat_auto"] == true {
				mode = "auto"
			}
			fmt.Fprintf(w, "  heartbeat   %s (%s)\n", seconds(hb), mode)
		}
		if n, ok := st["nat"].(map[string]any); ok {
			lifetime := "not measured"
			if l, ok := n["lifetime_s"].(float64); ok {
				lifetime = seconds(l)
			}
			fmt.Fprintf(w, "  nat         %s, public %s, mapping lifetime %s\n", str(n, "type"), str(n, "public_address"), lifetime)
		}
		if pm, ok := st["port_mapping"].(map[string]any); ok {
			fmt.Fprintf(w, "  port map    %s %s\n", str(pm, "protocol"), str(pm, "address"))
		}
		if exps, ok := st["exposures"].([]any); ok {
			for _, e := range exps {
				m, _ := e.(map[string]any)
				fmt.Fprintf(w, "  exposure    %-16s %s %s\n", str(m, "name"), str(m, "status"), strings.TrimPrefix(str(m, "detail"), "-"))
			}
		}
		if peers, ok := st["peers"].([]any); ok {
			for _, e := range peers {
				printPeer(w, e.(map[string]any), str)
			}
		}
	case "relay":
		fmt.Fprintf(w, "relay on %s\n", str(st, "addr"))
		agents, _ := st["agents"].([]any)
		fmt.Fprintf(w, "  %d agents connected\n", len(agents))
		for _, a := range agents {
			m, _ := a.(map[string]any)
			fmt.Fprintf(w, "  agent %-16s %s from %s, %s streams, since %s\n", str(m, "name"), str(m, "transport"), str(m, "addr"), str(m, "streams"), str(m, "connected_since"))
			exps, _ := m["exposures"].([]any)
			for _, e := range exps {
				x, _ := e.(map[string]any)
				fmt.Fprintf(w, "    exposure %-16s %s/%s\n", str(x, "name"), str(x, "port"), str(x, "proto"))
			}
		}
	}
	if p, ok := st["process"].(map[string]any); ok {
		fmt.Fprintf(w, "  process     %s goroutines, %s open fds, heap %s, rss %s\n",
			str(p, "goroutines"), str(p, "open_fds"), mebibytes(p["heap_inuse"]), mebibytes(p["rss"]))
	}
	if c, ok := st["counters"].(map[string]any); ok {
		fmt.Fprintf(w, "  counters   ")
		for _, k := range sortedKeys(c) {
			fmt.Fprintf(w, " %s=%v", k, c[k])
		}
		fmt.Fprintln(w)
	}
}

// printPeer renders one peer session: its path (the direct address and
// how it was found, or relay), RTT, bytes both ways and the last
// punching attempt's failure.
func printPeer(w io.Writer, p map[string]any, str func(map[string]any, string) string) {
	path := str(p, "path")
	switch path {
	case "direct":
		path = "direct " + str(p, "direct_addr") + " (" + str(p, "found_as") + ")"
	case "connecting":
		fmt.Fprintf(w, "  peer        %-16s connecting: %s\n", str(p, "name"), str(p, "status"))
		return
	}
	fmt.Fprintf(w, "  peer        %-16s %s, rtt %s ms, in %s B, out %s B, strategy %s\n",
		str(p, "name"), path, str(p, "rtt_ms"), str(p, "bytes_in"), str(p, "bytes_out"), str(p, "strategy"))
	if f := str(p, "last_punch_failure"); f != "-" {
		fmt.Fprintf(w, "              last punch %s: %s\n", str(p, "last_punch"), f)
	}
}

// seconds renders a number of seconds from the JSON document.
func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond).String()
}

// mebibytes renders a byte count from the JSON document (a float64) for a
// person.
func mebibytes(v any) string {
	b, ok := v.(float64)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", b/(1<<20))
}
