// Command matrix runs one peer session for every pair of NAT behaviours
// (site A x site B, 7 x 7) and writes the table to docs/nat-matrix.md:
// path, time to the first byte, time to a direct path, the strategy that
// won, throughput and whether the payload's sha256 matched.
//
// Each cell: an agent on a1 (behind A) offers its TCP echo to b1 (`peers:
// [b1]`) and an agent on b1 (behind B) reaches it on a local port
// (`connect`). The first echo goes through the relay at once; both agents
// punch beside it; the 4 MiB echo runs once the session is direct or a
// punching round has ended, and the path is read from b1's status after it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pinhole/pinhole/lab"
)

// prefix names the matrix's namespaces.
const prefix = "phmx-"

type cell struct {
	a, b      lab.Behaviour
	connected bool
	path      string        // b1's path after the transfer: direct or relay
	first     time.Duration // agents started -> first intact echo through b1's local port
	toDirect  float64       // ms, from b1's status (0: never direct)
	how       string        // found_as, or "tried " and b1's strategy when not direct
	mbps      float64
	intact    bool
	err       string
}

// settle is how long a cell waits for a direct path before the transfer:
// one punching round (5 s) and the time to set it up.
const settle = 8 * time.Second

func main() {
	bin := flag.String("bin", "bin/pinhole", "pinhole binary")
	out := flag.String("out", "docs/nat-matrix.md", "markdown file to write")
	size := flag.Int("bytes", 4<<20, "bytes echoed per cell")
	flag.Parse()
	if why := lab.Available(); why != "" {
		fmt.Fprintln(os.Stderr, "matrix:", why)
		os.Exit(1)
	}
	// Ctrl-C removes the cell's lab on the way out.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		lab.Down(prefix)
		os.Exit(1)
	}()
	dir, err := os.MkdirTemp("", "pinhole-matrix-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	probe := filepath.Join(dir, "probe")
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	if out, err := exec.CommandContext(bctx, "go", "build", "-o", probe, "./lab/cmd/probe").CombinedOutput(); err != nil {
		fatal(fmt.Errorf("build probe: %v\n%s", err, out))
	}
	pinhole, _ := filepath.Abs(*bin)
	bins := lab.Binaries{Pinhole: pinhole, Probe: probe}

	var cells []cell
	start := time.Now()
	for _, a := range lab.Behaviours {
		for _, b := range lab.Behaviours {
			c := run(bins, dir, a, b, *size)
			status := "ok"
			if !c.connected || !c.intact {
				status = "FAILED " + c.err
			}
			fmt.Printf("A=%-16s B=%-16s %s (%s), first byte %v, direct after %.0f ms, %.0f Mbit/s, %s\n",
				a, b, c.path, c.how, c.first.Round(time.Millisecond), c.toDirect, c.mbps, status)
			cells = append(cells, c)
		}
	}
	doc := render(cells, *size, time.Since(start))
	if old, err := os.ReadFile(*out); err == nil {
		// make lab-heartbeat's section stays.
		if hb := lab.Section(string(old), lab.HeartbeatHeading); hb != "" {
			doc = lab.ReplaceSection(doc, lab.HeartbeatHeading, hb)
		}
	}
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		fatal(err)
	}
	fmt.Println("wrote", *out)
	for _, c := range cells {
		if !c.connected || !c.intact {
			os.Exit(1)
		}
	}
}

func run(bins lab.Binaries, dir string, a, b lab.Behaviour, size int) cell {
	c := cell{a: a, b: b}
	// The cell's lab processes die with ctx, whatever happens.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, prefix, map[string]lab.Site{"a": {Behaviour: a}, "b": {Behaviour: b}})
	if err != nil {
		c.err = err.Error()
		return c
	}
	defer l.Close()
	cdir, _ := os.MkdirTemp(dir, "cell-")
	t0 := time.Now()
	d, err := lab.DeployPeers(ctx, l, bins, cdir, "5s", []string{"a1", "b1"}, []lab.PeerLink{{From: "b1", To: "a1"}})
	if err != nil {
		c.err = err.Error()
		return c
	}
	local, _ := d.PeerPorts("b1", "a1")
	if _, err := d.WaitReachable("b1", local, 30*time.Second); err != nil {
		c.err = err.Error()
		return c
	}
	c.connected, c.first = true, time.Since(t0)
	d.WaitDirect("b1", "a1", settle) // relay cells wait out the round
	r := d.TCPCheck("b1", local, size)
	c.mbps, c.intact, c.err = r.Mbps, r.Intact, r.Error
	st, ok, err := d.Peer("b1", "a1")
	switch {
	case err != nil:
		c.err = "status: " + err.Error()
	case !ok:
		c.err = "status: no peer a1"
	default:
		c.path, c.toDirect, c.how = st.Path, st.TimeToDirect, st.FoundAs
		if c.path != "direct" {
			c.how = "tried " + st.Strategy
		}
	}
	return c
}

// theory says whether any technique can give the pair a direct path, and
// which, for cells that stayed on the relay.
func theory(a, b lab.Behaviour) string {
	has := func(x lab.Behaviour) bool { return a == x || b == x }
	open := func(x lab.Behaviour) bool { return x == lab.None || x == lab.FullCone || x == lab.RestrictedCone }
	switch {
	case has(lab.UDPBlocked) && has(lab.Symmetric):
		return "hardly: TCP simultaneous open against random TCP ports (not built); no UDP path"
	case has(lab.UDPBlocked):
		return "yes: TCP simultaneous open (not built; the lab's TCP mappings keep their ports except behind `symmetric`); no UDP path"
	case a == lab.Symmetric && b == lab.Symmetric:
		return "no: both random symmetric"
	case has(lab.Symmetric) && has(lab.SymmetricSeq):
		return "hardly: birthday probing against a moving prediction (not built)"
	case a == lab.SymmetricSeq && b == lab.SymmetricSeq:
		return "yes: prediction on both sides, but not the way both probe now: each maps the peer's port d to " +
			"its own d+6 (6 ports went to the relay and NAT discovery first), so no two flows ever cross"
	case has(lab.Symmetric) && (open(a) || open(b)):
		return "yes: naive punching (the open side learns the mapping)"
	case has(lab.Symmetric):
		return "yes: birthday probing (not built)"
	}
	return "yes: naive punching or port prediction"
}

func render(cells []cell, size int, took time.Duration) string {
	commit, _ := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	var s strings.Builder
	fmt.Fprintf(&s, "# NAT matrix\n\nGenerated by `make lab-matrix` on %s at commit %s in %v.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), strings.TrimSpace(string(commit)), took.Round(time.Second))
	fmt.Fprintf(&s, "Each cell: an agent on a1 (behind A, rows) offers its TCP echo to the agent on b1 (behind B, columns) "+
		"(`peers: [b1]`), which reaches it on a local port (`connect`) through a peer session. b1 echoes %d MiB through "+
		"that port and compares sha256, once the session is direct or a punching round (5 s) has ended. "+
		"Cell: path after the transfer (from b1's `pinhole status`), time from starting the agents to the first "+
		"intact echo, time from the session's start to its direct path (status `time_to_direct_ms`), how the direct "+
		"address was found (`found_as`; or b1's punching strategy when it stayed on the relay), echo throughput "+
		"(both directions), hash check.\n\n", size>>20)
	direct, cone, hardT := 0, []float64{}, []float64{}
	for _, c := range cells {
		if c.path == "direct" {
			direct++
			if hard(c.a) || hard(c.b) {
				hardT = append(hardT, c.toDirect)
			} else {
				cone = append(cone, c.toDirect)
			}
		}
	}
	fmt.Fprintf(&s, "**Direct: %d of %d cells.** Median time to direct: %s for cone pairs (%d), %s for pairs with a symmetric side (%d).\n\n",
		direct, len(cells), median(cone), len(cone), median(hardT), len(hardT))
	s.WriteString("| A \\ B |")
	for _, b := range lab.Behaviours {
		fmt.Fprintf(&s, " %s |", b)
	}
	s.WriteString("\n|---|")
	for range lab.Behaviours {
		s.WriteString("---|")
	}
	s.WriteString("\n")
	for i, a := range lab.Behaviours {
		fmt.Fprintf(&s, "| **%s** |", a)
		for j := range lab.Behaviours {
			c := cells[i*len(lab.Behaviours)+j]
			if !c.connected {
				s.WriteString(" not connected |")
				continue
			}
			mark := "sha256 ok"
			if !c.intact {
				mark = "**hash mismatch**"
			}
			toDirect := "-"
			if c.toDirect > 0 {
				toDirect = fmt.Sprintf("%.0f ms", c.toDirect)
			}
			fmt.Fprintf(&s, " %s, %.1f s, %s, %s, %.0f Mbit/s, %s |", c.path, c.first.Seconds(), toDirect, c.how, c.mbps, mark)
		}
		s.WriteString("\n")
	}
	var notDirect []string
	possible := 0
	for _, c := range cells {
		if c.path != "direct" {
			why := theory(c.a, c.b)
			if strings.HasPrefix(why, "yes") {
				possible++
			}
			notDirect = append(notDirect, fmt.Sprintf("- %s x %s (%s): %s\n", c.a, c.b, c.how, why))
		}
	}
	fmt.Fprintf(&s, "\nCells not direct (%d), and whether theory allows a direct path (yes for %d):\n\n%s",
		len(notDirect), possible, strings.Join(notDirect, ""))
	s.WriteString("\nBehaviours (RFC 4787 / RFC 3489 names): ")
	var names []string
	for _, b := range lab.Behaviours {
		names = append(names, fmt.Sprintf("%s = %s", b, b.Classic()))
	}
	s.WriteString(strings.Join(names, "; ") + ". See lab/README.md for the nftables rules of each.\n")
	return s.String()
}

func hard(b lab.Behaviour) bool { return b == lab.Symmetric || b == lab.SymmetricSeq }

// median of ms values, formatted ("-" for none).
func median(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + m) / 2
	}
	return fmt.Sprintf("%.0f ms", m)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "matrix:", err)
	os.Exit(1)
}
