// Package lab is a small internet in Linux network namespaces: a public
// segment with a relay host (two addresses, as RFC 5780 tests need) and an
// internet client, and two sites, A and B, each a NAT gateway built from
// nftables rules with one or two LAN hosts behind it. Tests run the real
// pinhole binary on these hosts. Every namespace carries the lab's prefix,
// nothing is configured in the root namespace, and no packet can leave:
// the segments are veth pairs and bridges that end inside the lab.
//
// Before tests trust a behaviour, TestSelfCheck* proves it: mapping,
// filtering, port allocation, timeouts, hairpin, loss and delay are
// measured with a probe (lab/cmd/probe), and a mislabelled behaviour
// fails loudly.
package lab

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Behaviour is a NAT gateway's behaviour in RFC 4787 terms; String gives
// the name, Classic the RFC 3489 name the seed article uses.
type Behaviour int

const (
	None           Behaviour = iota // no NAT: the site host has a public address
	FullCone                        // EIM + endpoint-independent filtering (RFC 4787 §4.1, §5)
	RestrictedCone                  // EIM + address-dependent filtering
	PortRestricted                  // EIM + address-and-port-dependent filtering (Linux default)
	Symmetric                       // endpoint-dependent mapping, random ports
	SymmetricSeq                    // endpoint-dependent mapping, sequential ports (delta 1)
	UDPBlocked                      // UDP dropped, TCP NATed (port-restricted)
)

// Behaviours lists every behaviour, in table order.
var Behaviours = []Behaviour{None, FullCone, RestrictedCone, PortRestricted, Symmetric, SymmetricSeq, UDPBlocked}

var names = map[Behaviour][2]string{
	None:           {"none", "open internet"},
	FullCone:       {"full-cone", "full cone"},
	RestrictedCone: {"restricted-cone", "restricted cone"},
	PortRestricted: {"port-restricted", "port-restricted cone"},
	Symmetric:      {"symmetric", "symmetric"},
	SymmetricSeq:   {"symmetric-seq", "symmetric, sequential ports"},
	UDPBlocked:     {"udp-blocked", "UDP blocked"},
}

func (b Behaviour) String() string { return names[b][0] }

// Classic is the RFC 3489 name.
func (b Behaviour) Classic() string { return names[b][1] }

// EIM reports whether the mapping is endpoint-independent.
func (b Behaviour) EIM() bool {
	return b == FullCone || b == RestrictedCone || b == PortRestricted || b == UDPBlocked
}

// Site is one site's gateway configuration.
type Site struct {
	Behaviour Behaviour
	Hairpin   bool          // LAN hosts reach each other via the public mapping (EIM behaviours)
	CGNAT     bool          // a second, carrier NAT (port-restricted) above the site NAT
	Timeout   time.Duration // UDP mapping lifetime (conntrack and map timeouts); 0: 30s
	LossPct   float64       // random loss in each direction, percent
	Delay     time.Duration // one-way delay added on the gateway's uplink
	Hosts     int           // LAN hosts (1 or 2; default 1)
}

func (s Site) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 30 * time.Second
}

// ParseSite reads "behaviour[:option[:option...]]", options being hairpin,
// cgnat, timeout=SECONDS, loss=PERCENT%, delay=DURATION, hosts=N.
func ParseSite(s string) (Site, error) {
	parts := strings.Split(s, ":")
	var site Site
	found := false
	for b, n := range names {
		if n[0] == parts[0] {
			site.Behaviour, found = b, true
		}
	}
	if !found {
		var all []string
		for _, b := range Behaviours {
			all = append(all, b.String())
		}
		return site, fmt.Errorf("unknown behaviour %q (one of %s)", parts[0], strings.Join(all, ", "))
	}
	for _, opt := range parts[1:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "hairpin":
			site.Hairpin = true
		case "cgnat":
			site.CGNAT = true
		case "timeout":
			n, err := strconv.Atoi(strings.TrimSuffix(v, "s"))
			if err != nil || n < 1 {
				return site, fmt.Errorf("timeout=%q: want whole seconds", v)
			}
			site.Timeout = time.Duration(n) * time.Second
		case "loss":
			f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if err != nil || f < 0 || f > 100 {
				return site, fmt.Errorf("loss=%q: want a percentage", v)
			}
			site.LossPct = f
		case "delay":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > 5*time.Second {
				return site, fmt.Errorf("delay=%q: want a duration like 20ms", v)
			}
			site.Delay = d
		case "hosts":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 2 {
				return site, fmt.Errorf("hosts=%q: want 1 or 2", v)
			}
			site.Hosts = n
		default:
			return site, fmt.Errorf("unknown option %q", opt)
		}
	}
	return site, site.Validate()
}

// Validate reports option combinations the lab does not build.
func (s Site) Validate() error {
	if s.Delay > 0 && (s.Behaviour == None || s.CGNAT) {
		return fmt.Errorf("delay is built for a site gateway's uplink (not with none or cgnat)")
	}
	if s.Delay < 0 || s.Delay > 5*time.Second || s.LossPct < 0 || s.LossPct > 100 || s.Hosts < 0 || s.Hosts > 2 {
		return fmt.Errorf("site %+v: delay 0-5s, loss 0-100%%, hosts 1 or 2", s)
	}
	if s.CGNAT && s.Behaviour == None {
		return fmt.Errorf("cgnat needs a site NAT below it (not with none)")
	}
	if s.Hairpin && (!s.Behaviour.EIM() || s.Behaviour == UDPBlocked) {
		return fmt.Errorf("hairpin is built for endpoint-independent mappings only (full-cone, restricted-cone, port-restricted)")
	}
	return nil
}
