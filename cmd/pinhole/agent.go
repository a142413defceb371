package main

import (
	"fmt"
	"io"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/cmd/pinhole/internal/config"
)

func init() {
	register("agent", command{summary: "run the agent (the router side)", run: runAgent})
}

func runAgent(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("agent", "agent -c agent.yaml", stderr)
	path := fs.StringP("config", "c", "/etc/pinhole/agent.yaml", "agent config file")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	f, err := config.LoadAgent(*path)
	if err != nil {
		// Config errors go to stderr as file:line lines, and the exit code
		// tells procd not to bother respawning quickly.
		fmt.Fprintf(stderr, "pinhole agent: invalid config:\n%v\n", err)
		return 1
	}
	log := newLogger(stderr, f.Log.Level, f.Log.Format).With("agent", f.Agent.Name)
	setMemoryLimit(f.MemoryLimit, log)
	agent.Software = "pinhole/" + version
	a, err := agent.New(f.Agent, log)
	if err != nil {
		log.Error("start agent", "err", err)
		return 1
	}
	ctx, cancel := serveSignals(func() {
		nf, err := config.LoadAgent(*path)
		if err != nil {
			// A bad edit must not take the running tunnel down.
			log.Error("reload refused, keeping the running config", "err", err)
			return
		}
		a.Reload(nf.Agent)
	})
	defer cancel()
	if err := a.Run(ctx); err != nil {
		log.Error("agent stopped", "err", err)
		return 1
	}
	return 0
}
