package lab

import (
	"fmt"
	"strings"
)

// natRules returns the nftables ruleset that gives a gateway its
// behaviour. wan and lan are interface names, wanIP the gateway's public
// address. Each rule's comment says which RFC 4787 property it makes.
//
// Linux conntrack NAT is the base: masquerade keeps the source port when it
// can, so a LAN socket gets the same public port toward every destination
// (endpoint-independent mapping), and only replies from the exact remote
// address and port match a conntrack entry (address-and-port-dependent
// filtering). The cone behaviours widen the filter with a dynamic map of
// mappings recorded from outbound packets; the symmetric ones break the
// mapping with per-connection ports.
func natRules(b Behaviour, s Site, wanIP, lanNet string) string {
	t := int(s.timeout().Seconds())
	var fwd, pre, post []string
	// mappings: public port -> LAN address and port, learned from outbound
	// UDP; with port preservation the public port is the LAN source port.
	learn := fmt.Sprintf(`iifname "lan" meta l4proto udp update @mappings { udp sport timeout %ds : ip saddr . udp sport }`, t)
	switch b {
	case FullCone:
		fwd = append(fwd, learn)
		// EIF: any remote may send to a live mapping (RFC 4787 §5).
		pre = append(pre, `iifname "wan" meta l4proto udp dnat ip to udp dport map @mappings`)
		post = append(post, `oifname "wan" masquerade`)
	case RestrictedCone:
		fwd = append(fwd, learn,
			fmt.Sprintf(`iifname "lan" meta l4proto udp update @contacted { ip daddr . udp sport timeout %ds }`, t))
		// ADF: a remote address the LAN socket has sent to may use any port.
		pre = append(pre, `iifname "wan" meta l4proto udp ip saddr . udp dport @contacted dnat ip to udp dport map @mappings`)
		post = append(post, `oifname "wan" masquerade`)
	case PortRestricted:
		post = append(post, `oifname "wan" masquerade`) // conntrack alone: EIM + APDF
	case Symmetric:
		// EDM: a new random public port for every new destination.
		post = append(post, `oifname "wan" masquerade random`)
	case SymmetricSeq:
		// EDM with sequential allocation: each new connection takes the
		// next port. numgen counts the first packets the nat hook sees; a
		// map turns the count into an address and port (a port computed
		// from numgen directly lands byte-swapped in the NAT register).
		post = append(post, fmt.Sprintf(`oifname "wan" meta l4proto udp snat ip to numgen inc mod %d map { %s }`, seqPorts, seqMap(wanIP)),
			`oifname "wan" masquerade`)
	case UDPBlocked:
		fwd = append(fwd, `iifname "lan" oifname "wan" meta l4proto udp drop`, `iifname "wan" meta l4proto udp drop`)
		post = append(post, `oifname "wan" masquerade`)
	}
	if s.Hairpin {
		// Hairpinning (RFC 4787 REQ-9): LAN traffic to our own public
		// address and a live mapping is turned back into the LAN, with the
		// source rewritten to the sender's public mapping (the public
		// address; port preservation keeps the port). The input interface
		// is unknown in postrouting, so the rule matches by subnet.
		pre = append(pre, fmt.Sprintf(`iifname "lan" ip daddr %s meta l4proto udp dnat ip to udp dport map @mappings`, wanIP))
		post = append(post, fmt.Sprintf(`oifname "lan" ip saddr %s ip daddr %s meta l4proto udp snat ip to %s`, lanNet, lanNet, wanIP))
	}
	if s.LossPct > 0 {
		permille := int(s.LossPct * 10)
		fwd = append(fwd, fmt.Sprintf(`numgen random mod 1000 < %d counter drop comment "emulated loss %.1f%%"`, permille, s.LossPct))
	}
	return fmt.Sprintf(`table ip lab {
	map mappings { type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout %ds; }
	set contacted { type ipv4_addr . inet_service; flags dynamic,timeout; timeout %ds; }
	chain forward_filter { type filter hook forward priority filter; policy accept;
		%s
	}
	chain prerouting_nat { type nat hook prerouting priority dstnat; policy accept;
		%s
	}
	chain postrouting_nat { type nat hook postrouting priority srcnat; policy accept;
		%s
	}
}
`, t, t, strings.Join(fwd, "\n\t\t"), strings.Join(pre, "\n\t\t"), strings.Join(post, "\n\t\t"))
}

// seqPorts is how many ports the sequential NAT cycles through
// (30000-31023); the port delta is 1 except at the wrap.
const seqPorts = 1024

func seqMap(wanIP string) string {
	entries := make([]string, seqPorts)
	for i := range entries {
		entries[i] = fmt.Sprintf("%d : %s . %d", i, wanIP, 30000+i)
	}
	return strings.Join(entries, ", ")
}
