package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Peer sessions in a deployment. A PeerLink {From, To} makes To offer its
// TCP and UDP echo exposures to From (`peers: [From]`), and From reach them
// through a peer session on local ports (`connect`), so a check from From
// to PeerPorts travels agent to agent: through the relay at first, then
// over a punched direct path where the two NATs allow one.

// PeerLink is one connecting host (From) and one exposing host (To).
type PeerLink struct{ From, To string }

// PeerTCPPort is the first local port of a connecting host's links; the
// k-th link of that host uses PeerTCPPort+10k (TCP) and +1 (UDP).
const PeerTCPPort = 7800

// PeerPorts returns the local TCP and UDP addresses on from that reach
// to's echo services ("" when the deployment has no such link).
func (d *Deployment) PeerPorts(from, to string) (tcp, udp string) {
	k := 0
	for _, ln := range d.links {
		if ln.From != from {
			continue
		}
		if ln.To == to {
			return fmt.Sprintf("127.0.0.1:%d", PeerTCPPort+10*k), fmt.Sprintf("127.0.0.1:%d", PeerTCPPort+10*k+1)
		}
		k++
	}
	return "", ""
}

// peersOf is the `peers` list of host's exposures, as a YAML flow-mapping
// entry ("" when no link targets host).
func (d *Deployment) peersOf(host string) string {
	var names []string
	for _, ln := range d.links {
		if ln.To == host {
			names = append(names, ln.From)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return ", peers: [" + strings.Join(names, ", ") + "]"
}

// connectsOf is host's connect section ("" when it connects to nobody).
func (d *Deployment) connectsOf(host string) string {
	var s strings.Builder
	for _, ln := range d.links {
		if ln.From != host {
			continue
		}
		if s.Len() == 0 {
			s.WriteString("connect:\n")
		}
		tcp, udp := d.PeerPorts(ln.From, ln.To)
		fmt.Fprintf(&s, "  - {peer: %s, service: echo, protocol: tcp, listen: \"%s\"}\n", ln.To, tcp)
		fmt.Fprintf(&s, "  - {peer: %s, service: uecho, protocol: udp, listen: \"%s\"}\n", ln.To, udp)
	}
	return s.String()
}

// PeerStatus is one entry of `pinhole status --json`'s peers.
type PeerStatus struct {
	Name             string  `json:"name"`
	Path             string  `json:"path"`
	Status           string  `json:"status"`
	Direct           string  `json:"direct_addr"`
	FoundAs          string  `json:"found_as"`
	Strategy         string  `json:"strategy"`
	RTTMillis        float64 `json:"rtt_ms"`
	BytesIn          uint64  `json:"bytes_in"`
	BytesOut         uint64  `json:"bytes_out"`
	DatagramsDirect  uint64  `json:"datagrams_direct"`
	DatagramsRelayed uint64  `json:"datagrams_relayed"`
	PathSwitches     int     `json:"path_switches"`
	TimeToDirect     float64 `json:"time_to_direct_ms"`
	LastFailure      string  `json:"last_punch_failure"`
}

// Peer returns host's view of its session with peer (ok false when the
// status has no entry for it).
func (d *Deployment) Peer(host, peer string) (PeerStatus, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := d.Lab.Run(ctx, host, d.bins.Pinhole, "status", "--admin", "127.0.0.1:7702", "--json")
	if err != nil {
		return PeerStatus{}, false, err
	}
	var st struct {
		Peers []PeerStatus `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return PeerStatus{}, false, err
	}
	for _, p := range st.Peers {
		if p.Name == peer {
			return p, true, nil
		}
	}
	return PeerStatus{}, false, nil
}

// WaitDirect polls host's status until its session with peer is direct,
// or limit passes; it returns the last status seen.
func (d *Deployment) WaitDirect(host, peer string, limit time.Duration) (PeerStatus, error) {
	end := time.Now().Add(limit)
	var last PeerStatus
	for {
		p, ok, err := d.Peer(host, peer)
		if err == nil && ok {
			last = p
			if p.Path == "direct" {
				return p, nil
			}
		}
		if time.Now().After(end) {
			return last, fmt.Errorf("%s: session with %s not direct after %v (path %q, strategy %q, last failure %q)",
				host, peer, limit, last.Path, last.Strategy, last.LastFailure)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// PathChange is one "peer path: ..." line of an agent's log.
type PathChange struct {
	At     time.Time
	Direct bool   // the line says direct (else relay)
	Line   string // the whole log line
}

// PathChanges lists the path changes an agent logged (text log format:
// time=RFC3339 ... msg="peer path: direct ..." or "peer path: relay ...").
func PathChanges(log string) []PathChange {
	var out []PathChange
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, `msg="peer path: `)
		if i < 0 || !strings.HasPrefix(line, "time=") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		rest := line[i+len(`msg="peer path: `):]
		out = append(out, PathChange{At: at, Direct: strings.HasPrefix(rest, "direct"), Line: line})
	}
	return out
}
