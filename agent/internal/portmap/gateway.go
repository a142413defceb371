package portmap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// rtfGateway is the RTF_GATEWAY route flag (linux/route.h).
const rtfGateway = 0x2

// DefaultGateway returns the IPv4 default gateway from file (a
// /proc/net/route table; "" reads the kernel's), the one with the lowest
// metric. NAT-PMP and PCP are sent to it (RFC 6886 §3.1, RFC 6887 §8.1).
func DefaultGateway(file string) (netip.Addr, error) {
	if file == "" {
		file = "/proc/net/route"
	}
	f, err := os.Open(file)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read routes: %w", err)
	}
	defer f.Close()
	return parseRoutes(io.LimitReader(f, 1<<20))
}

// parseRoutes reads /proc/net/route: a header line, then per route
// Iface, Destination, Gateway, Flags, RefCnt, Use, Metric, ... with the
// addresses in hex, in the kernel's (little-endian) byte order.
func parseRoutes(r io.Reader) (netip.Addr, error) {
	var best netip.Addr
	bestMetric := uint64(1<<64 - 1)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 7 || f[1] != "00000000" {
			continue
		}
		gw, err1 := strconv.ParseUint(f[2], 16, 32)
		flags, err2 := strconv.ParseUint(f[3], 16, 32)
		metric, err3 := strconv.ParseUint(f[6], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || flags&rtfGateway == 0 || gw == 0 {
			continue
		}
		var a [4]byte
		binary.LittleEndian.PutUint32(a[:], uint32(gw))
		if metric < bestMetric {
			best, bestMetric = netip.AddrFrom4(a), metric
		}
	}
	if !best.IsValid() {
		return best, ErrNoGateway
	}
	return best, nil
}
