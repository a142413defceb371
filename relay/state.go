package relay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

// The relay remembers, in a small state file, where its UDP agents are and
// which session index each one's link has here. When it starts again (a
// restart, a crash, SIGKILL) it sends each of them a Refuse "unknown
// session" naming that index, which is what an agent's packet to a
// restarted relay would draw anyway: the agent closes the dead link and
// handshakes at once, instead of noticing only at its next heartbeat,
// which may be minutes away when heartbeats are tuned to a long NAT
// mapping lifetime. The invitation is an unauthenticated hint, as every
// Refuse is: it only makes an agent start a normal authenticated
// handshake, and a forger must know the session's random 32-bit index.

const (
	stateHeader = "pinhole relay state v1"
	// stateSettle is how soon after a session comes or goes, or an agent
	// follows its NAT to a new address, the state is written (coalescing
	// a burst of them, a reconnect storm, into one write): a relay that
	// crashes a second after an agent connected still invites it back.
	// stateEvery is only a safety net: the snapshot it compares costs a
	// pass over every session (8 % of an idle relay's CPU at 10,000
	// agents when it ran every 2 s to catch address changes).
	stateSettle = 100 * time.Millisecond
	stateEvery  = time.Minute
	// stateMaxBytes bounds what is read back (about 40 bytes an agent).
	stateMaxBytes = 8 << 20
	// invitesPerSecond paces the invitations after a start, so a relay of
	// ten thousand agents does not send them in one burst (and the
	// handshakes that follow arrive spread out).
	invitesPerSecond = 2000
)

// stateEntry is one agent's link: where it is and the relay-side index.
type stateEntry struct {
	addr  netip.AddrPort
	index uint32
}

// stateSnapshot lists the live UDP sessions.
func (r *Relay) stateSnapshot() []stateEntry {
	var out []stateEntry
	for _, s := range r.liveSessions() {
		if s.pc != nil {
			out = append(out, stateEntry{addr: s.pc.Peer(), index: s.index})
		}
	}
	return out
}

// encodeState renders entries as the state file's contents.
func encodeState(entries []stateEntry) []byte {
	b := []byte(stateHeader + "\n")
	for _, e := range entries { // no fmt (10,000 agents took 5 ms)
		b = e.addr.AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(e.index), 10)
		b = append(b, '\n')
	}
	return b
}

// writeState writes contents to path atomically: a temporary file in the
// same directory, synced, then renamed over the old one, so a crash
// mid-write leaves the previous state, never half of one.
func writeState(path string, contents []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".relay-state-*")
	if err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if _, err := tmp.Write(contents); err != nil {
		tmp.Close()
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return nil
}

// readState reads a state file; a missing file is an empty state, and
// lines that do not parse are skipped (the file is only a hint).
func readState(path string) ([]stateEntry, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, stateMaxBytes))
	if !sc.Scan() || sc.Text() != stateHeader {
		return nil, fmt.Errorf("read state %s: not a pinhole relay state file", path)
	}
	var out []stateEntry
	for sc.Scan() {
		a, i, ok := strings.Cut(sc.Text(), " ")
		ap, err := netip.ParseAddrPort(a)
		idx, ierr := strconv.ParseUint(i, 10, 32)
		if ok && err == nil && ierr == nil {
			out = append(out, stateEntry{addr: ap, index: uint32(idx)})
		}
	}
	return out, sc.Err()
}

// keepState invites the agents of the last state file, then writes the
// state soon after a live session comes or goes or an agent moves
// (stateSettle), and every stateEvery if it changed anyway.
func (r *Relay) keepState(ctx context.Context, path string) {
	if old, err := readState(path); err != nil {
		r.log.Warn("relay state not used", "err", err)
	} else if len(old) > 0 {
		r.agentsAt.remember(old)
		r.log.Info("inviting the agents of the last run to reconnect", "agents", len(old), "state", path)
		r.invite(ctx, old)
	}
	var last []byte
	save := func() {
		b := encodeState(r.stateSnapshot())
		if bytes.Equal(b, last) {
			return
		}
		if err := writeState(path, b); err != nil {
			r.log.Warn("relay state not saved", "err", err)
			return
		}
		last = b
	}
	t := time.NewTicker(stateEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			save()
		case <-r.stateChanged:
			select {
			case <-ctx.Done():
				return
			case <-time.After(stateSettle):
			}
			save()
		}
	}
}

// changedState tells keepState that a live session came or went, or an
// agent moved.
func (r *Relay) changedState() {
	select {
	case r.stateChanged <- struct{}{}:
	default:
	}
}

// invite sends each remembered agent a Refuse "unknown session" for its
// old index, paced.
func (r *Relay) invite(ctx context.Context, entries []stateEntry) {
	tick := time.NewTicker(time.Second / invitesPerSecond)
	defer tick.Stop()
	for _, e := range entries {
		r.sendUDP(protocol.AppendRefuse(nil, protocol.Refuse{Code: protocol.RefuseUnknownSession, Version: protocol.Version, Index: e.index}), e.addr)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
