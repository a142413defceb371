package main

import (
	"fmt"
	"github.com/pinhole/pinhole/internal/slog"
	"io"
	"os/signal"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/cmd/pinhole/internal/config"
)

func init() {
	register("agent", command{summary: "run the agent (the router side)", run: runAgent})
}

func runAgent(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("agent", "agent -c agent.yaml", stderr)
	path := fs.StringP("config", "c", "/etc/pinhole/agent.yaml", "agent config file")
	toSyslog := fs.Bool("syslog", false, "log to the syslog socket /dev/log with each line's priority (the init script sets it: procd logs stderr as errors)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	netSig := notifyNetChange()
	defer signal.Stop(netSig)
	f, err := config.LoadAgent(*path)
	if err != nil {
		// Config errors go to stderr (logread under procd) as file:line
		// lines. procd ignores exit codes: it respawns by its respawn
		// limits, which is why the init script checks the config first and
		// starts nothing when it is broken.
		fmt.Fprintf(stderr, "pinhole agent: invalid config:\n%v\n", err)
		return 1
	}
	var log *slog.Logger
	if *toSyslog {
		log = newSyslogLogger("/dev/log", stderr, f.Log.Level, f.Log.Format)
	} else {
		log = newLogger(stderr, f.Log.Level, f.Log.Format)
	}
	log = log.With("agent", f.Agent.Name)
	setMemoryLimit(f.MemoryLimit, log)
	agent.Software = "pinhole/" + version
	a, err := agent.New(f.Agent, log)
	if err != nil {
		log.Error("start agent", "err", err)
		return 1
	}
	defer trimPages(log)()
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
	go forwardNetChange(ctx, netSig, func() {
		log.Debug("network changed (SIGUSR1)")
		a.NetworkChanged()
	})
	if err := a.Run(ctx); err != nil {
		log.Error("agent stopped", "err", err)
		return 1
	}
	return 0
}
