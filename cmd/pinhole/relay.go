package main

import (
	"fmt"
	"io"

	"github.com/pinhole/pinhole/cmd/pinhole/internal/config"
	"github.com/pinhole/pinhole/relay"
)

func init() {
	register("relay", command{summary: "run the relay (the public side, on a VPS)", run: runRelay})
}

func runRelay(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("relay", "relay -c relay.yaml", stderr)
	path := fs.StringP("config", "c", "/etc/pinhole/relay.yaml", "relay config file")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	f, err := config.LoadRelay(*path)
	if err != nil {
		fmt.Fprintf(stderr, "pinhole relay: invalid config:\n%v\n", err)
		return 1
	}
	log := newLogger(stderr, f.Log.Level, f.Log.Format)
	setMemoryLimit(f.MemoryLimit, log)
	r, err := relay.New(f.Relay, log)
	if err != nil {
		log.Error("start relay", "err", err)
		return 1
	}
	ctx, cancel := serveSignals(func() {
		nf, err := config.LoadRelay(*path)
		if err != nil {
			log.Error("reload refused, keeping the running config", "err", err)
			return
		}
		r.Reload(nf.Relay)
	})
	defer cancel()
	if err := r.Run(ctx); err != nil {
		log.Error("relay stopped", "err", err)
		return 1
	}
	return 0
}
