package lab

import (
	"fmt"
	"strings"
)

// natRules returns the nftables ruleset that gives a gateway its
// behaviour. The gateway's interfaces are "wan" and "lan"; wanIP is its
// public address and lanNet the LAN prefix. Each rule's comment says
// which RFC 4787 property it makes.
//
// Linux conntrack NAT is the base: a conntrack entry only lets in replies
// from the exact remote address and port (address-and-port-dependent
// filtering), and masquerade keeps the source port when it can. Keeping
// the port is not endpoint-independent mapping: when a tuple is taken (two
// LAN hosts on the same port, or a remote whose packet arrived first)
// masquerade picks another port for that destination only. So the
// endpoint-independent behaviours record each live mapping in two dynamic
// maps, learned after NAT from the packets that leave:
//
//	pub2lan  public port -> LAN address . LAN port   (for inbound dnat)
//	lan2pub  LAN address . LAN port -> public port   (to reuse the mapping)
//
// and every new flow from a LAN endpoint with a live mapping is sent out
// on that same public port (RFC 4787 REQ-1). The cone behaviours widen the
// filter with a dnat through pub2lan; the symmetric ones choose a new port
// for every new destination.
//
// Unsolicited packets addressed to the gateway itself are dropped in its
// input hook, as a router's firewall does. That matters: an inbound packet
// that nothing accepts would otherwise leave a conntrack entry behind, and
// that entry both shadows a later dnat and collides with the LAN host's
// own outbound flow to the same remote, which then gets a new port. Hole
// punching sends exactly such packets.
func natRules(b Behaviour, s Site, wanIP, lanNet string) string {
	t := fmt.Sprintf("%ds", int(s.timeout().Seconds()))
	var fwd, pre, post, learn []string
	eim := b == FullCone || b == RestrictedCone || b == PortRestricted
	if eim {
		// Learned after NAT (srcnat + 10): udp sport is the public port.
		// A flow the LAN host started is in the original direction; a
		// flow a remote started through a cone's dnat leaves in the reply
		// direction. Outbound packets refresh the mapping (RFC 4787 REQ-6).
		learn = append(learn,
			`oifname "wan" meta l4proto udp ct direction original update @pub2lan { udp sport timeout `+t+` : ct original ip saddr . ct original proto-src }`,
			`oifname "wan" meta l4proto udp ct direction original update @lan2pub { ct original ip saddr . ct original proto-src timeout `+t+` : udp sport }`,
			`oifname "wan" meta l4proto udp ct direction reply update @pub2lan { udp sport timeout `+t+` : ct reply ip saddr . ct reply proto-src }`,
			`oifname "wan" meta l4proto udp ct direction reply update @lan2pub { ct reply ip saddr . ct reply proto-src timeout `+t+` : udp sport }`)
		// EIM: a LAN endpoint with a live mapping keeps its public port
		// toward every destination; a lookup miss falls through to
		// masquerade, which allocates (port-preserving when it can).
		post = append(post, fmt.Sprintf(`oifname "wan" meta l4proto udp snat ip to %s : ip saddr . udp sport map @lan2pub`, wanIP))
	}
	switch b {
	case FullCone:
		// EIF: any remote may send to a live mapping (RFC 4787 §5).
		pre = append(pre, `iifname "wan" meta l4proto udp dnat ip to udp dport map @pub2lan`)
		post = append(post, `oifname "wan" masquerade`)
	case RestrictedCone:
		// ADF: a remote address the mapping has sent to may use any port.
		learn = append(learn, `oifname "wan" meta l4proto udp update @contacted { ip daddr . udp sport timeout `+t+` }`)
		pre = append(pre, `iifname "wan" meta l4proto udp ip saddr . udp dport @contacted dnat ip to udp dport map @pub2lan`)
		post = append(post, `oifname "wan" masquerade`)
	case PortRestricted:
		// APDF: conntrack alone lets in only replies from the exact
		// remote address and port.
		post = append(post, `oifname "wan" masquerade`)
	case Symmetric:
		// EDM: a new random public port for every new destination.
		post = append(post, `oifname "wan" masquerade random`)
	case SymmetricSeq:
		// EDM with sequential allocation: each new flow takes the next
		// port. numgen counts the first packets the nat hook sees; a map
		// turns the count into an address and port (a port computed from
		// numgen directly lands byte-swapped in the NAT register).
		post = append(post, fmt.Sprintf(`oifname "wan" meta l4proto udp snat ip to numgen inc mod %d map { %s }`, seqPorts, seqMap(wanIP)),
			`oifname "wan" masquerade`)
	case UDPBlocked:
		fwd = append(fwd, `iifname "lan" oifname "wan" meta l4proto udp drop`, `iifname "wan" meta l4proto udp drop`)
		post = append(post, `oifname "wan" masquerade`)
	}
	if s.Hairpin {
		// Hairpinning (RFC 4787 REQ-9): LAN traffic to our own public
		// address and a live mapping is turned back into the LAN, and its
		// source becomes the sender's public mapping (or, for a sender
		// without one yet, the public address with its own port). The
		// input interface is unknown in postrouting, so the rules match
		// by subnet. Hairpinned packets are not filtered.
		pre = append(pre, fmt.Sprintf(`iifname "lan" ip daddr %s meta l4proto udp dnat ip to udp dport map @pub2lan`, wanIP))
		post = append(post,
			fmt.Sprintf(`oifname "lan" ip saddr %s ip daddr %s meta l4proto udp snat ip to %s : ip saddr . udp sport map @lan2pub`, lanNet, lanNet, wanIP),
			fmt.Sprintf(`oifname "lan" ip saddr %s ip daddr %s meta l4proto udp snat ip to %s`, lanNet, lanNet, wanIP))
	}
	if s.LossPct > 0 {
		permille := int(s.LossPct*10 + 0.5)
		fwd = append(fwd, fmt.Sprintf(`numgen random mod 1000 < %d counter drop comment "emulated loss %.1f%%"`, permille, s.LossPct))
	}
	return fmt.Sprintf(`table ip lab {
	map pub2lan { type inet_service : ipv4_addr . inet_service; flags dynamic,timeout; timeout %[1]s; }
	map lan2pub { type ipv4_addr . inet_service : inet_service; flags dynamic,timeout; timeout %[1]s; }
	set contacted { type ipv4_addr . inet_service; flags dynamic,timeout; timeout %[1]s; }
	chain input { type filter hook input priority filter; policy accept;
		iifname { "wan", "lan" } meta l4proto { tcp, udp } drop comment "no services on the gateway; unsolicited packets leave no conntrack entry"
	}
	chain forward_filter { type filter hook forward priority filter; policy accept;
		%[2]s
	}
	chain prerouting_nat { type nat hook prerouting priority dstnat; policy accept;
		%[3]s
	}
	chain postrouting_nat { type nat hook postrouting priority srcnat; policy accept;
		%[4]s
	}
	chain learn_mappings { type filter hook postrouting priority srcnat + 10; policy accept;
		%[5]s
	}
}
`, t, strings.Join(fwd, "\n\t\t"), strings.Join(pre, "\n\t\t"), strings.Join(post, "\n\t\t"), strings.Join(learn, "\n\t\t"))
}

// flushRules empties the dynamic maps, so together with conntrack -F the
// gateway forgets every mapping, as a rebooted router does.
const flushRules = "flush map ip lab pub2lan\nflush map ip lab lan2pub\nflush set ip lab contacted\n"

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
