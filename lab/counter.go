package lab

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Traffic is what a counter saw: packets and their bytes at the IP layer
// (the IP header included, the Ethernet header not).
type Traffic struct {
	Packets, Bytes uint64
}

// Sub returns t minus an earlier reading.
func (t Traffic) Sub(earlier Traffic) Traffic {
	return Traffic{t.Packets - earlier.Packets, t.Bytes - earlier.Bytes}
}

// UDPCounter counts, at a site's gateway, the datagrams of one UDP flow
// between a LAN socket and a public address: what the NAT forwards each
// way, whatever the programs at either end say they sent. It is a table
// of its own (ip pinhole_count) with a forward chain that only counts, so
// the behaviour's rules are untouched; inbound datagrams are counted after
// the NAT restored the LAN address, so both rules name the LAN socket.
type UDPCounter struct {
	l  *Lab
	gw string
}

// CountUDP starts counting the flow between lan (a LAN host's IP:port)
// and remote (IP:port) at site's gateway. A site has one counter at a
// time; a new one replaces it and starts from zero.
func (l *Lab) CountUDP(ctx context.Context, site, lan, remote string) (*UDPCounter, error) {
	lanIP, lanPort, ok1 := strings.Cut(lan, ":")
	remIP, remPort, ok2 := strings.Cut(remote, ":")
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("count udp: want IP:PORT, got %q and %q", lan, remote)
	}
	gw := "gw" + site
	rules := fmt.Sprintf(`table ip pinhole_count
delete table ip pinhole_count
table ip pinhole_count {
	chain count {
		type filter hook forward priority filter - 5; policy accept;
		iifname "lan" ip saddr %[1]s udp sport %[2]s ip daddr %[3]s udp dport %[4]s counter
		iifname "wan" ip saddr %[3]s udp sport %[4]s ip daddr %[1]s udp dport %[2]s counter
	}
}
`, lanIP, lanPort, remIP, remPort)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS(gw), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("count udp in %s: %v: %s", gw, err, out)
	}
	return &UDPCounter{l: l, gw: gw}, nil
}

var counterRe = regexp.MustCompile(`counter packets (\d+) bytes (\d+)`)

// Read returns the counts so far: up is LAN to remote, down the answers.
func (c *UDPCounter) Read(ctx context.Context) (up, down Traffic, err error) {
	out, err := c.l.Run(ctx, c.gw, "nft", "list", "table", "ip", "pinhole_count")
	if err != nil {
		return up, down, err
	}
	m := counterRe.FindAllStringSubmatch(out, -1)
	if len(m) != 2 {
		return up, down, fmt.Errorf("count udp in %s: %d counters in %q, want 2", c.gw, len(m), out)
	}
	parse := func(s []string) Traffic {
		p, _ := strconv.ParseUint(s[1], 10, 64)
		b, _ := strconv.ParseUint(s[2], 10, 64)
		return Traffic{p, b}
	}
	return parse(m[0]), parse(m[1]), nil
}
