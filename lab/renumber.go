package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// RenumberWAN gives a site's gateway a new public address, as an ISP does
// on a PPPoE redial or a DHCP lease with a new address: the old address is
// removed, the new one added, the NAT rules rebuilt for it and every
// mapping forgotten (conntrack -F), so a LAN host's next packet
// leaves from the new address and the relay's replies to the old one go
// nowhere. Only for a site whose gateway sits on the public segment (no
// carrier NAT, no emulated delay). PublicIP keeps returning the first
// address.
func (l *Lab) RenumberWAN(ctx context.Context, site, oldIP, newIP string) error {
	s := l.Spec[site]
	if s.CGNAT || s.Delay > 0 || s.Behaviour == None {
		return fmt.Errorf("renumber: site %s has no gateway on the public segment", site)
	}
	gw := "gw" + site
	n := map[string]int{"a": 1, "b": 2}[site]
	// The old address goes first: removing a primary address also removes
	// the secondaries of its subnet.
	if _, err := l.Run(ctx, gw, "ip", "addr", "del", oldIP+publicNet, "dev", "wan"); err != nil {
		return err
	}
	if _, err := l.Run(ctx, gw, "ip", "addr", "add", newIP+publicNet, "dev", "wan"); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS(gw), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("delete table ip lab\n" + natRules(s.Behaviour, s, newIP, fmt.Sprintf("10.0.%d.0/24", n)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("renumber %s: nft: %v: %s", gw, err, out)
	}
	_, err := l.Run(ctx, gw, "conntrack", "-F")
	return err
}
