package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// notifyNetChange starts catching SIGUSR1, the init script's "the WAN came
// up" signal (a procd interface trigger). It is called first thing in the
// agent: the signal's default action would end the process, and the
// trigger may fire while the agent is still starting at boot.
func notifyNetChange() chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	return c
}

// forwardNetChange calls changed for every SIGUSR1 until ctx ends. The
// agent rate-limits what follows (one link check a second), so a burst of
// signals needs no care here.
func forwardNetChange(ctx context.Context, c chan os.Signal, changed func()) {
	defer signal.Stop(c)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c:
			changed()
		}
	}
}
