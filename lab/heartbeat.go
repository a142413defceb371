package lab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Heartbeat measurements on a Deployment: how many keepalives an idle
// agent sends behind a site's NAT, whether its exposure stays reachable
// meanwhile, and how soon it answers again after the NAT forgot its
// mapping. The tests (heartbeat_test.go) assert on them; make
// lab-heartbeat (cmd/heartbeat) runs them for 10 minutes per NAT timeout
// and writes the table in docs/nat-matrix.md.

// agentStatus is the part of `pinhole status --json` these use.
type agentStatus struct {
	since     string
	pongs     float64
	heartbeat time.Duration
	lifetime  time.Duration // 0: not measured
	port      string        // the agent's UDP socket port
}

func (d *Deployment) agentStatus(host string) (agentStatus, error) {
	st, err := d.Status(host)
	if err != nil {
		return agentStatus{}, err
	}
	var s agentStatus
	s.since, _ = st["connected_since"].(string)
	if c, ok := st["counters"].(map[string]any); ok {
		s.pongs, _ = c["pongs"].(float64)
	}
	hb, _ := st["heartbeat_s"].(float64)
	s.heartbeat = time.Duration(hb * float64(time.Second))
	if n, ok := st["nat"].(map[string]any); ok {
		if l, ok := n["lifetime_s"].(float64); ok {
			s.lifetime = time.Duration(l * float64(time.Second))
		}
	}
	sock, _ := st["udp_socket"].(string)
	if i := strings.LastIndex(sock, ":"); i >= 0 {
		s.port = sock[i+1:]
	}
	return s, nil
}

// WaitLifetime waits until host's agent has measured its NAT's mapping
// lifetime (heartbeat auto) and returns it with the heartbeat interval
// tuned to it.
func (d *Deployment) WaitLifetime(ctx context.Context, host string, limit time.Duration) (lifetime, heartbeat time.Duration, err error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st, err := d.agentStatus(host); err == nil && st.lifetime > 0 {
			return st.lifetime, st.heartbeat, nil
		}
		time.Sleep(time.Second)
	}
	return 0, 0, fmt.Errorf("%s: mapping lifetime not measured within %v", host, limit)
}

// IdleResult is one idle period of an agent.
type IdleResult struct {
	Idle       time.Duration // the whole period
	Quiet      time.Duration // the period without the probes' requests
	Keepalives uint64        // heartbeats answered (the agent's pongs counter) over the whole period
	Up, Down   Traffic       // the agent's flow at its NAT, counted in the quiet parts only
	Probes     []time.Duration
	Failed     []string // probes that failed, and why
	Reconnect  string   // why the agent's link was replaced (empty: it was not)
	Heartbeat  time.Duration
}

// PerHour scales what was counted in the quiet parts to an hour.
func (r IdleResult) PerHour(t Traffic) (packets, bytes float64) {
	h := r.Quiet.Hours()
	return float64(t.Packets) / h, float64(t.Bytes) / h
}

// Idle leaves host's tunnel idle for idle, except for probes requests at
// random moments from the internet client through the TCP exposure (1 KiB
// echoed, each must come back intact within 10 s). host's flow to the relay
// is counted at its site's gateway between the probes (the probes'
// own traffic is left out).
func (d *Deployment) Idle(ctx context.Context, host string, idle time.Duration, probes int, rng *rand.Rand) (IdleResult, error) {
	r := IdleResult{Idle: idle}
	before, err := d.agentStatus(host)
	if err != nil {
		return r, err
	}
	r.Heartbeat = before.heartbeat
	cnt, err := d.Lab.CountUDP(ctx, host[:1], d.Lab.HostIP(host)+":"+before.port, RelayAddr)
	if err != nil {
		return r, err
	}
	var at []time.Duration
	for range probes {
		at = append(at, time.Duration(rng.Int64N(int64(idle))))
	}
	slices.Sort(at)
	at = append(at, idle)
	tcp, _ := d.Exposure(host)
	start := time.Now()
	var quietStart time.Time
	var up0, down0 Traffic
	mark := func() error {
		quietStart = time.Now()
		var err error
		up0, down0, err = cnt.Read(ctx)
		return err
	}
	add := func() error {
		up, down, err := cnt.Read(ctx)
		if err != nil {
			return err
		}
		r.Quiet += time.Since(quietStart)
		r.Up.Packets, r.Up.Bytes = r.Up.Packets+up.Sub(up0).Packets, r.Up.Bytes+up.Sub(up0).Bytes
		r.Down.Packets, r.Down.Bytes = r.Down.Packets+down.Sub(down0).Packets, r.Down.Bytes+down.Sub(down0).Bytes
		return nil
	}
	if err := mark(); err != nil {
		return r, err
	}
	for i, t := range at {
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(time.Until(start.Add(t))):
		}
		if err := add(); err != nil {
			return r, err
		}
		if i == len(at)-1 {
			break
		}
		r.Probes = append(r.Probes, t)
		c := d.TCPCheck("client", tcp, 1024)
		if !c.Intact || c.Seconds > 10 {
			r.Failed = append(r.Failed, fmt.Sprintf("at %v: intact %v after %.1fs (%s)", t.Round(time.Second), c.Intact, c.Seconds, c.Error))
		}
		if err := mark(); err != nil {
			return r, err
		}
	}
	after, err := d.agentStatus(host)
	if err != nil {
		return r, err
	}
	r.Keepalives = uint64(after.pongs - before.pongs)
	if after.since != before.since {
		r.Reconnect = fmt.Sprintf("connected since %s, then %s", before.since, after.since)
	}
	if out := d.Agents[host].Output(); strings.Contains(out, "relay link lost") {
		r.Reconnect += " (agent log: relay link lost)"
	}
	return r, nil
}

// FlushRecovery makes host's NAT forget every mapping (conntrack -F, as a
// rebooted router) right after one of the agent's heartbeats was
// answered, the worst moment: the next one is a whole interval away.
// It returns how long after the flush a request from the internet client
// through the TCP exposure (started at once, and retried) came back
// intact, and the heartbeat interval at that time.
func (d *Deployment) FlushRecovery(ctx context.Context, host string, limit time.Duration) (took, heartbeat time.Duration, err error) {
	st, err := d.agentStatus(host)
	if err != nil {
		return 0, 0, err
	}
	heartbeat = st.heartbeat
	deadline := time.Now().Add(st.heartbeat + 10*time.Second)
	for {
		now, err := d.agentStatus(host)
		if err == nil && now.pongs > st.pongs {
			break
		}
		if time.Now().After(deadline) {
			return 0, heartbeat, fmt.Errorf("%s: no heartbeat answered within %v", host, st.heartbeat+10*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.Lab.FlushMappings(ctx, host[:1]); err != nil {
		return 0, heartbeat, err
	}
	flushed := time.Now()
	tcp, _ := d.Exposure(host)
	for time.Since(flushed) < limit {
		if c := d.TCPCheck("client", tcp, 1024); c.Intact {
			return time.Since(flushed), heartbeat, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, heartbeat, fmt.Errorf("%s: exposure not back within %v of the flush", host, limit)
}
