package agent

import (
	"context"
	"time"

	"github.com/pinhole/pinhole/internal/slog"
)

// relayLoop keeps the agent linked to one of its relays until ctx ends:
// relays are tried in order (after a silent one, the next first), and
// every link is served until it ends; the waits between rounds are the
// backoff of timers.go.
func (a *Agent) relayLoop(ctx context.Context) {
	var b backoff
	first := 0                         // index of the relay tried first in the next round
	unreachable := map[string]string{} // relay address -> its last logged dial error
	last := ""                         // address of the relay of the last link ("": none yet)
	for ctx.Err() == nil {
		cfg := a.cfg.Load()
		netChanged := a.netChange.changed() // cuts this round's dials and wait short
		served, netEnd := false, false
		n := len(cfg.Relays)
		from := 0
		if n > 0 {
			from = first % n
		}
		first = 0 // after this round the list's order holds again: the first relay is preferred
		for k := range n {
			i := (from + k) % n
			r := cfg.Relays[i]
			conn, err := a.dialUntilNetChange(ctx, cfg, r)
			if err != nil {
				if ctx.Err() == nil {
					a.links.dialFailed(err)
					a.state.setError(err)
					// Retries come every second or two in an outage:
					// say what changed, not every repeat.
					if unreachable[r.Address] != err.Error() {
						unreachable[r.Address] = err.Error()
						a.log.Warn("relay unreachable", "relay", r.Address, "err", err)
					} else {
						a.log.Debug("relay still unreachable", "relay", r.Address, "err", err)
					}
				}
				continue
			}
			delete(unreachable, r.Address)
			if last != "" {
				a.links.Reconnects.Add(1)
				if last != r.Address {
					a.links.Failovers.Add(1)
				}
			}
			last = r.Address
			end := a.serve(ctx, conn, i)
			if end.registered && ctx.Err() == nil {
				a.links.Lost.Add(1)
			}
			served = true
			netEnd = end.why == endNetwork
			switch end.why {
			case endSilent:
				first = i + 1 // fail over: the silent relay is tried last
				if cfg.heartbeatAuto() {
					a.silentDeath.Store(true)
					a.unmeasured()
				}
			case endUDP:
				first = i // back to udp on the same relay
			case endNetwork:
				first = i
				// The new network gets a NAT measurement (and a mapping
				// lifetime) of its own even at the same public address.
				a.silentDeath.Store(true)
			}
			if end.why == endDuplicate {
				b.holdOff(cfg.reconnectMax())
			} else if end.why == endReplaced {
				b.holdOff(min(cfg.reconnectMax(), replacedHoldOff))
			} else if end.registered {
				b.linkLost(time.Now(), end.lived)
			}
			break
		}
		if ctx.Err() != nil {
			break
		}
		wait := b.next(time.Now(), cfg.reconnectMax())
		if netEnd {
			wait = 0
		}
		if !served {
			lvl := slog.LevelDebug
			if wait >= 5*time.Second { // a long wait is news; 1-2 s outage retries are not
				lvl = slog.LevelInfo
			}
			a.log.Log(ctx, lvl, "retrying relays", "in", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		case <-netChanged:
		}
	}
}
