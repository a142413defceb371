package confkit

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Address checks are syntax only: a config is judged the same everywhere
// and never waits on DNS (at boot the router's resolver may not be up).

// ParseHostPort checks "host:port" and returns it in canonical form. host
// is an IP address or a DNS name (not looked up). When the port is
// omitted, defPort is used; defPort 0 makes the port required. A bare IPv6
// address ("2001:db8::1", "[2001:db8::1]") takes defPort too.
func ParseHostPort(s string, defPort uint16) (string, error) {
	if s == "" {
		return "", errors.New("is empty")
	}
	bare := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if ip, err := netip.ParseAddr(bare); err == nil && (bare == s || "["+bare+"]" == s) {
		if defPort == 0 {
			return "", fmt.Errorf("%q has no port (want host:port, like 127.0.0.1:80)", s)
		}
		return netip.AddrPortFrom(ip, defPort).String(), nil
	}
	if !strings.Contains(s, ":") {
		if err := checkHostName(s); err != nil {
			return "", err
		}
		if defPort == 0 {
			return "", fmt.Errorf("%q has no port (want host:port, like 127.0.0.1:80)", s)
		}
		return net.JoinHostPort(s, strconv.Itoa(int(defPort))), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port (an IPv6 address needs brackets: [2001:db8::1]:7700)", s)
	}
	p, err := ParsePort(port, 1)
	if err != nil {
		return "", err
	}
	if host == "" {
		return "", fmt.Errorf("%q has no host (write 127.0.0.1%s for this machine)", s, s)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if err := checkHostName(host); err != nil {
			return "", err
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(int(p))), nil
}

// checkHostName accepts DNS names by RFC 1123 §2.1 syntax (letters,
// digits and hyphens in dot-separated labels of 1-63 characters, 253 in
// all), plus '_', which real zones contain.
func checkHostName(h string) error {
	bad := fmt.Errorf("host %q is not an IP address or host name", h)
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return bad
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return bad
			}
		}
	}
	return nil
}

// ParseListen checks a listen address "IP:port" or ":port" (all
// addresses). The port must be fixed: 1-65535.
func ParseListen(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a listen address like 0.0.0.0:7700 or [::]:7700", s)
	}
	if _, err := ParsePort(port, 1); err != nil {
		return "", err
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", fmt.Errorf("listen host %q must be an IP address (or empty, for all addresses)", host)
		}
	}
	return s, nil
}

// AdminOff is the word that disables a status endpoint.
const AdminOff = "off"

// ErrAdminNotLoopback reports a status endpoint reachable from other
// hosts; it has no authentication.
var ErrAdminNotLoopback = errors.New("must be a loopback IP (127.0.0.1, ::1) or a unix socket path starting with /, since the status endpoint has no authentication")

// ParseAdmin checks a status endpoint: "IP:port", a unix socket path
// starting with "/", or "off" (returned as ""). Unless allowRemote, the IP
// must be a loopback address; the error then wraps ErrAdminNotLoopback.
func ParseAdmin(s string, allowRemote bool) (string, error) {
	if s == AdminOff {
		return "", nil
	}
	if strings.HasPrefix(s, "/") {
		return s, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not IP:port, a unix socket path or off", s)
	}
	if _, err := ParsePort(port, 1); err != nil {
		return "", err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if allowRemote {
			return "", fmt.Errorf("host %q must be an IP address", host)
		}
		return "", fmt.Errorf("%q: %w", s, ErrAdminNotLoopback)
	}
	if !allowRemote && !ip.IsLoopback() {
		return "", fmt.Errorf("%q: %w", s, ErrAdminNotLoopback)
	}
	return s, nil
}

// ParseIP checks a bare IP address (the relay's bind).
func ParseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return ip, nil
}
