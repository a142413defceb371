package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Public addresses (RFC 5737 documentation range 203.0.113.0/24).
const (
	RelayIP   = "203.0.113.10"
	RelayIP2  = "203.0.113.11" // second relay address, for RFC 5780 probes
	ClientIP  = "203.0.113.20"
	publicNet = "/24"
)

// Lab is a running topology.
type Lab struct {
	Prefix string
	Spec   map[string]Site // "a" and "b"

	mu     sync.Mutex // guards procs and delays
	procs  []*Proc
	delays []*delayLink
}

// Host names: "relay", "client", "gwa", "gwb", "a1", "a2", "b1", "b2",
// and "cgna"/"cgnb" when a site has carrier-grade NAT.

// PublicIP returns the address a site's traffic appears from on the public
// segment (the outermost NAT's address, or the host's own for "none").
func (l *Lab) PublicIP(site string) string {
	s := l.Spec[site]
	switch {
	case s.Behaviour == None:
		return siteHostIP(site, 1, s)
	case s.CGNAT:
		return map[string]string{"a": "203.0.113.111", "b": "203.0.113.112"}[site]
	}
	return map[string]string{"a": "203.0.113.101", "b": "203.0.113.102"}[site]
}

// HostIP returns a host's own address.
func (l *Lab) HostIP(host string) string {
	switch host {
	case "relay":
		return RelayIP
	case "client":
		return ClientIP
	}
	site, n := host[:1], int(host[1]-'0')
	return siteHostIP(site, n, l.Spec[site])
}

func siteHostIP(site string, n int, s Site) string {
	if s.Behaviour == None {
		base := map[string]int{"a": 120, "b": 130}[site]
		return fmt.Sprintf("203.0.113.%d", base+n)
	}
	return fmt.Sprintf("10.0.%d.%d", map[string]int{"a": 1, "b": 2}[site], n+1)
}

// NS returns the network namespace name of a host.
func (l *Lab) NS(host string) string { return l.Prefix + host }

// Up builds the topology. On error everything built so far is removed.
func Up(ctx context.Context, prefix string, sites map[string]Site) (_ *Lab, err error) {
	for name, s := range sites {
		if name != "a" && name != "b" {
			return nil, fmt.Errorf("site %q: sites are a and b", name)
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("site %s: %w", name, err)
		}
	}
	l := &Lab{Prefix: prefix, Spec: sites}
	Down(prefix) // a crashed earlier run may have left namespaces behind
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	var b builder
	b.ctx = ctx
	ns := l.NS
	for _, h := range []string{"inet", "relay", "client"} {
		b.netns(ns(h))
	}
	b.ip(ns("inet"), "link", "add", "br0", "type", "bridge")
	b.ip(ns("inet"), "link", "set", "br0", "up")
	b.public(l, "relay", RelayIP, RelayIP2)
	b.public(l, "client", ClientIP)
	for _, site := range []string{"a", "b"} {
		s, ok := sites[site]
		if !ok {
			continue
		}
		b.site(l, site, s)
	}
	return l, b.err
}

// builder runs setup commands and keeps the first error.
type builder struct {
	ctx context.Context
	err error
}

func (b *builder) run(args ...string) {
	if b.err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		b.err = fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

func (b *builder) netns(name string) {
	b.run("ip", "netns", "add", name)
	b.ip(name, "link", "set", "lo", "up")
}

func (b *builder) ip(ns string, args ...string) { b.run(append([]string{"ip", "-n", ns}, args...)...) }

func (b *builder) sysctl(ns, kv string) { b.run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", kv) }

// veth connects ifA in nsA with ifB in nsB.
func (b *builder) veth(nsA, ifA, nsB, ifB string) {
	b.run("ip", "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	b.ip(nsA, "link", "set", ifA, "up")
	b.ip(nsB, "link", "set", ifB, "up")
}

// public attaches a host to the public bridge with the given addresses.
func (b *builder) public(l *Lab, host string, addrs ...string) { b.publicIf(l, host, "eth0", addrs...) }

// publicIf is public with a chosen interface name (NAT gateways call their
// public side "wan").
func (b *builder) publicIf(l *Lab, host, ifname string, addrs ...string) {
	b.veth(l.NS(host), ifname, l.NS("inet"), host)
	b.ip(l.NS("inet"), "link", "set", host, "master", "br0")
	for _, a := range addrs {
		b.ip(l.NS(host), "addr", "add", a+publicNet, "dev", ifname)
	}
}

func (b *builder) site(l *Lab, site string, s Site) {
	hosts := max(s.Hosts, 1)
	if s.Behaviour == None {
		for i := 1; i <= hosts; i++ {
			h := fmt.Sprintf("%s%d", site, i)
			b.netns(l.NS(h))
			b.public(l, h, siteHostIP(site, i, s))
		}
		return
	}
	gw, n := "gw"+site, map[string]int{"a": 1, "b": 2}[site]
	b.netns(l.NS(gw))
	gwWAN := map[string]string{"a": "203.0.113.101", "b": "203.0.113.102"}[site]
	if s.CGNAT {
		// The carrier's NAT sits between the site gateway and the public
		// segment; the site's WAN is in RFC 6598 shared address space.
		cgn := "cgn" + site
		b.netns(l.NS(cgn))
		b.publicIf(l, cgn, "wan", l.PublicIP(site))
		b.veth(l.NS(cgn), "lan", l.NS(gw), "wan")
		b.ip(l.NS(cgn), "addr", "add", fmt.Sprintf("100.64.%d.1/24", n), "dev", "lan")
		gwWAN = fmt.Sprintf("100.64.%d.2", n)
		b.ip(l.NS(gw), "addr", "add", gwWAN+"/24", "dev", "wan")
		b.ip(l.NS(gw), "route", "add", "default", "via", fmt.Sprintf("100.64.%d.1", n))
		b.gateway(l.NS(cgn), Site{Behaviour: PortRestricted, Timeout: s.Timeout}, PortRestricted, l.PublicIP(site), fmt.Sprintf("100.64.%d.0/24", n))
	} else if s.Delay > 0 {
		// gw wan <-> [dly: in | out] <-> public bridge, with a forwarder
		// holding frames for the delay in between.
		dly := "dly" + site
		b.netns(l.NS(dly))
		b.sysctl(l.NS(dly), "net.ipv6.conf.all.disable_ipv6=1")
		b.veth(l.NS(gw), "wan", l.NS(dly), "in")
		b.veth(l.NS(dly), "out", l.NS("inet"), gw)
		b.ip(l.NS("inet"), "link", "set", gw, "master", "br0")
		b.ip(l.NS(gw), "addr", "add", gwWAN+publicNet, "dev", "wan")
		// The forwarder copies raw frames, so the devices that transmit
		// toward it must hand over finished frames: no checksum offload
		// (veth would leave checksums unfinished) and no TSO/GSO (64 KiB
		// super-frames); the kernel then does both in software first.
		// Promiscuous mode lets frames for other MACs reach the sockets.
		for ns, devs := range map[string][]string{l.NS(dly): {"in", "out"}, l.NS(gw): {"wan"}, l.NS("inet"): {gw}} {
			for _, dev := range devs {
				b.run("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off")
			}
		}
		b.ip(l.NS(dly), "link", "set", "in", "promisc", "on")
		b.ip(l.NS(dly), "link", "set", "out", "promisc", "on")
		if b.err == nil {
			dl, err := startDelay(l.NS(dly), "in", "out", s.Delay)
			if err != nil {
				b.err = err
				return
			}
			l.mu.Lock()
			l.delays = append(l.delays, dl)
			l.mu.Unlock()
		}
	} else {
		b.veth(l.NS(gw), "wan", l.NS("inet"), gw)
		b.ip(l.NS("inet"), "link", "set", gw, "master", "br0")
		b.ip(l.NS(gw), "addr", "add", gwWAN+publicNet, "dev", "wan")
	}
	b.ip(l.NS(gw), "link", "add", "lan", "type", "bridge")
	b.ip(l.NS(gw), "link", "set", "lan", "up")
	b.ip(l.NS(gw), "addr", "add", fmt.Sprintf("10.0.%d.1/24", n), "dev", "lan")
	for i := 1; i <= hosts; i++ {
		h := fmt.Sprintf("%s%d", site, i)
		b.netns(l.NS(h))
		b.veth(l.NS(h), "eth0", l.NS(gw), h)
		b.ip(l.NS(gw), "link", "set", h, "master", "lan")
		b.ip(l.NS(h), "addr", "add", siteHostIP(site, i, s)+"/24", "dev", "eth0")
		b.ip(l.NS(h), "route", "add", "default", "via", fmt.Sprintf("10.0.%d.1", n))
	}
	b.gateway(l.NS(gw), s, s.Behaviour, gwWAN, fmt.Sprintf("10.0.%d.0/24", n))
}

// gateway turns a namespace into a NAT router with the given behaviour.
func (b *builder) gateway(ns string, s Site, beh Behaviour, wanIP, lanNet string) {
	b.sysctl(ns, "net.ipv4.ip_forward=1")
	t := int(s.timeout().Seconds())
	// Conntrack timeouts are per network namespace: this is the mapping
	// lifetime the agent must measure and beat with its heartbeats.
	b.sysctl(ns, fmt.Sprintf("net.netfilter.nf_conntrack_udp_timeout=%d", t))
	b.sysctl(ns, fmt.Sprintf("net.netfilter.nf_conntrack_udp_timeout_stream=%d", t))
	if b.err != nil {
		return
	}
	cmd := exec.CommandContext(b.ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(natRules(beh, s, wanIP, lanNet))
	if out, err := cmd.CombinedOutput(); err != nil {
		b.err = fmt.Errorf("nft in %s: %v: %s", ns, err, out)
	}
}

// Close stops every process the lab started and removes its namespaces.
// It is safe to call twice.
func (l *Lab) Close() {
	l.StopProcs()
	l.mu.Lock()
	delays := l.delays
	l.delays = nil
	l.mu.Unlock()
	for _, d := range delays {
		d.close()
	}
	Down(l.Prefix)
}

// StopProcs stops every process started in the lab so far and returns
// once they have exited.
func (l *Lab) StopProcs() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
}

// Down removes every namespace whose name starts with prefix, killing any
// process still inside (never this process). It touches nothing else and
// is safe to run twice.
func Down(prefix string) {
	if prefix == "" {
		return
	}
	for _, name := range Namespaces(prefix) {
		for _, pid := range runQuiet("ip", "netns", "pids", name) {
			if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() {
				syscall.Kill(n, syscall.SIGKILL)
			}
		}
		runQuiet("ip", "netns", "del", name)
	}
}

// Namespaces lists the network namespaces whose names start with prefix.
func Namespaces(prefix string) []string {
	var names []string
	for _, line := range runQuiet("ip", "netns", "list") {
		if strings.HasPrefix(line, prefix) {
			names = append(names, line)
		}
	}
	return names
}

// runQuiet runs a short housekeeping command with a timeout and returns
// the first word of each output line.
func runQuiet(args ...string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	var words []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			words = append(words, f[0])
		}
	}
	return words
}

// FlushMappings makes a site's NAT forget every mapping, as a rebooted
// router does: conntrack -F and the gateway's dynamic mapping tables, on
// the site gateway and on its carrier NAT if it has one.
func (l *Lab) FlushMappings(ctx context.Context, site string) error {
	gws := []string{"gw" + site}
	if l.Spec[site].CGNAT {
		gws = append(gws, "cgn"+site)
	}
	for _, gw := range gws {
		if _, err := l.Run(ctx, gw, "conntrack", "-F"); err != nil {
			return fmt.Errorf("flush mappings: %w", err)
		}
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS(gw), "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(flushRules)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("flush mappings in %s: %v: %s", gw, err, out)
		}
	}
	return nil
}

// Hosts lists the lab's hosts: relay, client, then for each site its
// carrier NAT, gateway and LAN hosts (a site with behaviour none has only
// hosts).
func (l *Lab) Hosts() []string {
	hosts := []string{"relay", "client"}
	for _, site := range []string{"a", "b"} {
		s, ok := l.Spec[site]
		if !ok {
			continue
		}
		if s.Behaviour != None {
			if s.CGNAT {
				hosts = append(hosts, "cgn"+site)
			}
			hosts = append(hosts, "gw"+site)
		}
		for i := 1; i <= max(s.Hosts, 1); i++ {
			hosts = append(hosts, fmt.Sprintf("%s%d", site, i))
		}
	}
	return hosts
}

// Available reports why the lab cannot run here, or "" when it can.
func Available() string {
	if os.Geteuid() != 0 {
		return "the NAT lab needs root (network namespaces, nftables)"
	}
	for _, tool := range []string{"ip", "nft", "conntrack", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("the NAT lab needs %s (apt-get install iproute2 nftables conntrack ethtool)", tool)
		}
	}
	return ""
}
