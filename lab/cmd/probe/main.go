// Command probe measures a NAT from inside the lab, the way RFC 5780
// describes: a responder on the relay host's two addresses tells a client
// which public address its packets came from, sends to it from other ports
// and addresses on request, and answers after a delay; the client turns the
// answers into facts (mapping varies by destination? which inbound packets
// pass? sequential ports? mapping lifetime? hairpin? loss?) printed as JSON.
//
//	probe serve 203.0.113.10:3478 203.0.113.10:3479 203.0.113.11:3478
//	probe nat 203.0.113.10:3478 203.0.113.10:3479 203.0.113.11:3478
//	probe hold PORT WAIT 203.0.113.10:3478 203.0.113.10:3479 203.0.113.11:3478
//	probe expire 203.0.113.10:3478 SECONDS [FROM-SOCKET]
//	probe hairpin-listen 203.0.113.10:3478   (then, on another LAN host:)
//	probe hairpin-send PUBLIC-MAPPING 203.0.113.10:3478
//	probe send ADDR MESSAGE
//	probe loss 203.0.113.10:3478 COUNT
//	probe rtt 203.0.113.10:3478 COUNT
//
// The wire is a few text words per datagram; this is a test tool.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: probe serve|nat|hold|expire|hairpin-listen|hairpin-send|send|loss|rtt|tcp-echo|udp-echo|tcp-check|udp-check ARGS...")
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		err = serve(args)
	case "nat":
		err = report(natProbe(args))
	case "hold":
		port, _ := strconv.Atoi(args[0])
		wait, _ := time.ParseDuration(args[1])
		err = report(holdProbe(port, wait, args[2:]))
	case "expire":
		secs, _ := strconv.Atoi(args[1])
		from := 0
		if len(args) > 2 {
			from, _ = strconv.Atoi(args[2])
		}
		err = report(expireProbe(args[0], secs, from))
	case "hairpin-listen":
		err = hairpinListen(args[0])
	case "send":
		err = send(args[0], args[1])
	case "hairpin-send":
		err = report(hairpinSend(args[0], args[1]))
	case "tcp-echo":
		err = tcpEcho(args[0])
	case "udp-echo":
		err = udpEcho(args[0])
	case "tcp-check":
		n, _ := strconv.Atoi(args[1])
		var mbit float64
		if len(args) > 2 {
			mbit, _ = strconv.ParseFloat(args[2], 64)
		}
		err = report(tcpCheck(args[0], n, mbit))
	case "udp-check":
		n, _ := strconv.Atoi(args[1])
		err = report(udpCheck(args[0], n))
	case "loss":
		n, _ := strconv.Atoi(args[1])
		err = report(lossProbe(args[0], n))
	case "rtt":
		n, _ := strconv.Atoi(args[1])
		err = report(rttProbe(args[0], n))
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

func report(v any, err error) error {
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(v)
}

// serve answers on every address given:
//
//	map            -> "addr <observed>" from the same socket
//	from J TOKEN   -> TOKEN sent from socket J to the requester
//	later S J TOK  -> TOK sent from socket J after S seconds
//	ping N         -> "pong N"
func serve(addrs []string) error {
	var socks []*net.UDPConn
	for _, a := range addrs {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(a)))
		if err != nil {
			return err
		}
		socks = append(socks, c)
	}
	for _, c := range socks {
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				f := strings.Fields(string(buf[:n]))
				if len(f) == 0 {
					continue
				}
				switch {
				case f[0] == "map":
					c.WriteToUDPAddrPort([]byte("addr "+from.String()), from)
				case f[0] == "from" && len(f) == 3:
					if j, err := strconv.Atoi(f[1]); err == nil && j < len(socks) {
						socks[j].WriteToUDPAddrPort([]byte(f[2]), from)
					}
				case f[0] == "later" && len(f) == 4:
					s, _ := strconv.Atoi(f[1])
					j, _ := strconv.Atoi(f[2])
					if j < len(socks) && s >= 0 && s < 600 {
						time.AfterFunc(time.Duration(s)*time.Second, func() { socks[j].WriteToUDPAddrPort([]byte(f[3]), from) })
					}
				case f[0] == "ping" && len(f) == 2:
					c.WriteToUDPAddrPort([]byte("pong "+f[1]), from)
				}
			}
		}()
	}
	select {}
}

// ask sends msg to srv and returns the first reply, or "" on timeout.
func ask(c *net.UDPConn, srv netip.AddrPort, msg string, wait time.Duration) string {
	for try := 0; try < 3; try++ {
		c.WriteToUDPAddrPort([]byte(msg), srv)
		if r := recv(c, wait); r != "" {
			return r
		}
	}
	return ""
}

func recv(c *net.UDPConn, wait time.Duration) string {
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(wait))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// expect waits for token, ignoring stale datagrams.
func expect(c *net.UDPConn, token string, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if recv(c, time.Until(deadline)) == token {
			return true
		}
	}
	return false
}

// NATReport is what `probe nat` prints.
type NATReport struct {
	Local  string   `json:"local"`
	Mapped []string `json:"mapped"` // public address seen by each server address
	FilterReport
}

// FilterReport is the filtering half of `probe nat`, and what `probe hold`
// prints.
type FilterReport struct {
	// FilterMapped is the filtering socket's mapping, as server 0 saw it.
	FilterMapped string `json:"filter_mapped"`
	// Filtering (RFC 4787 §5): which unsolicited senders reach the mapping.
	FromSame      bool `json:"from_same"`       // the address the client sent to
	FromOtherPort bool `json:"from_other_port"` // same IP, other port
	FromOtherIP   bool `json:"from_other_ip"`   // other IP
	// MappedAfter is the mapping seen by servers 1 and 2 when the socket
	// sends to them after their unsolicited packets: an endpoint-
	// independent mapping must not change (RFC 4787 REQ-1), even though
	// the remote spoke first, as it does in hole punching.
	MappedAfter []string `json:"mapped_after_inbound"`
}

func parseServers(servers []string) []netip.AddrPort {
	var srv []netip.AddrPort
	for _, s := range servers {
		srv = append(srv, netip.MustParseAddrPort(s))
	}
	return srv
}

func natProbe(servers []string) (*NATReport, error) {
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, err
	}
	r := &NATReport{Local: c.LocalAddr().String()}
	srv := parseServers(servers)
	// Mapping: one socket to each server address (RFC 5780 §4.3).
	for _, s := range srv {
		r.Mapped = append(r.Mapped, mapped(c, s))
		if r.Mapped[0] == "" {
			// No answer at all: UDP does not get through. Report every
			// mapping and filter opening as absent without waiting more.
			r.Mapped = make([]string, len(srv))
			r.MappedAfter = make([]string, len(srv)-1)
			c.Close()
			return r, nil
		}
	}
	c.Close()
	// Filtering (RFC 5780 §4.4), from a fresh socket that has only ever
	// talked to srv[0].
	if c, err = net.ListenUDP("udp4", nil); err != nil {
		return nil, err
	}
	defer c.Close()
	r.FilterMapped = mapped(c, srv[0])
	r.FilterReport = filterProbe(c, srv, r.FilterMapped)
	return r, nil
}

// mapped asks srv which address c's packets come from ("" if no answer).
func mapped(c *net.UDPConn, srv netip.AddrPort) string {
	return strings.TrimPrefix(ask(c, srv, "map", 700*time.Millisecond), "addr ")
}

// filterProbe asks srv[0] to answer c from srv[0], then from srv[1]
// (other port), then from srv[2] (other IP), and afterwards sends to
// srv[1] and srv[2] to see whether those unsolicited packets moved the
// mapping. c must have talked to srv[0] only.
func filterProbe(c *net.UDPConn, srv []netip.AddrPort, m0 string) FilterReport {
	check := func(j int) bool {
		tok := fmt.Sprintf("tok-%d-%d", j, time.Now().UnixNano())
		for try := 0; try < 2; try++ {
			c.WriteToUDPAddrPort([]byte(fmt.Sprintf("from %d %s", j, tok)), srv[0])
			if expect(c, tok, 500*time.Millisecond) {
				return true
			}
		}
		return false
	}
	r := FilterReport{FilterMapped: m0}
	r.FromSame, r.FromOtherPort, r.FromOtherIP = check(0), check(1), check(2)
	r.MappedAfter = []string{mapped(c, srv[1]), mapped(c, srv[2])}
	return r
}

// holdProbe is filterProbe on a socket bound to a chosen port: it prints
// the socket's mapping as a first JSON line, waits, then runs the checks.
// Two LAN hosts holding the same port at once make the NAT choose a
// different public port for the second (RFC 4787 §4.2.1 port
// preservation cannot hold for both); the mapping tables must still send
// each host its own packets.
func holdProbe(port int, wait time.Duration, servers []string) (*FilterReport, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	srv := parseServers(servers)
	m0 := mapped(c, srv[0])
	json.NewEncoder(os.Stdout).Encode(map[string]string{"mapped": m0})
	time.Sleep(wait)
	r := filterProbe(c, srv, m0)
	return &r, nil
}

// ExpireReport is what `probe expire` prints.
type ExpireReport struct {
	IdleSeconds int  `json:"idle_seconds"`
	From        int  `json:"from"`  // the server socket that answered
	Alive       bool `json:"alive"` // the delayed answer came through
}

// expireProbe asks the server to answer after secs of silence, from its
// socket number from: the answer arrives only if the NAT kept the mapping
// (and, from another socket, its filter opening) that long (RFC 5780 §4.6).
func expireProbe(server string, secs, from int) (*ExpireReport, error) {
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	tok := fmt.Sprintf("late-%d", time.Now().UnixNano())
	c.WriteToUDPAddrPort([]byte(fmt.Sprintf("later %d %d %s", secs, from, tok)), netip.MustParseAddrPort(server))
	return &ExpireReport{IdleSeconds: secs, From: from, Alive: expect(c, tok, time.Duration(secs)*time.Second+1500*time.Millisecond)}, nil
}

// HairpinReport is what `probe hairpin-listen` prints last.
type HairpinReport struct {
	Works bool   `json:"works"`
	From  string `json:"from"` // source address the hairpinned packet carried
}

// hairpinListen learns this socket's public mapping, prints it as a first
// JSON line, and waits 3 s for "hairpin" from another LAN host sending to
// that mapping: it arrives only if the NAT hairpins (RFC 4787 REQ-9).
// The sender starts at once and is done within a second.
func hairpinListen(server string) error {
	a, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return err
	}
	defer a.Close()
	json.NewEncoder(os.Stdout).Encode(map[string]string{"mapped": mapped(a, netip.MustParseAddrPort(server))})
	r := &HairpinReport{}
	buf := make([]byte, 1500)
	a.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		n, from, err := a.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		if string(buf[:n]) == "hairpin" {
			r.Works, r.From = true, from.String()
			break
		}
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// HairpinSend is what `probe hairpin-send` prints.
type HairpinSend struct {
	Mapped string `json:"mapped"` // this socket's own public mapping
}

// hairpinSend learns this socket's public mapping from server, then sends
// "hairpin" from the same socket to addr (another LAN host's mapping)
// three times, 100 ms apart. A hairpinning NAT delivers it from Mapped.
func hairpinSend(addr, server string) (*HairpinSend, error) {
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &HairpinSend{Mapped: mapped(c, netip.MustParseAddrPort(server))}
	for range 3 {
		if _, err := c.WriteToUDPAddrPort([]byte("hairpin"), netip.MustParseAddrPort(addr)); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r, nil
}

// send sends msg to addr three times, 100 ms apart.
func send(addr, msg string) error {
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return err
	}
	defer c.Close()
	for range 3 {
		if _, err := c.WriteToUDPAddrPort([]byte(msg), netip.MustParseAddrPort(addr)); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// LossReport is what `probe loss` prints.
type LossReport struct {
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	LossPct  float64 `json:"round_trip_loss_pct"`
}

// lossProbe sends n pings at a steady pace and counts the pongs.
func lossProbe(server string, n int) (*LossReport, error) {
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	srv := netip.MustParseAddrPort(server)
	got := make(map[string]bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r := recv(c, 2*time.Second)
			if r == "" {
				return
			}
			got[r] = true
		}
	}()
	for i := range n {
		c.WriteToUDPAddrPort([]byte(fmt.Sprintf("ping %d", i)), srv)
		time.Sleep(time.Millisecond)
	}
	<-done
	return &LossReport{Sent: n, Received: len(got), LossPct: 100 * float64(n-len(got)) / float64(n)}, nil
}

// RTTReport is what `probe rtt` prints.
type RTTReport struct {
	Samples  int     `json:"samples"`
	MedianMs float64 `json:"median_ms"`
	MinMs    float64 `json:"min_ms"`
}

// rttProbe measures n ping round trips, one at a time.
func rttProbe(server string, n int) (*RTTReport, error) {
	c, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	srv := netip.MustParseAddrPort(server)
	var rtts []float64
	for i := range n {
		start := time.Now()
		c.WriteToUDPAddrPort([]byte(fmt.Sprintf("ping %d", i)), srv)
		if expect(c, fmt.Sprintf("pong %d", i), 2*time.Second) {
			rtts = append(rtts, float64(time.Since(start).Microseconds())/1000)
		}
	}
	if len(rtts) == 0 {
		return &RTTReport{}, nil
	}
	sort.Float64s(rtts)
	return &RTTReport{Samples: len(rtts), MedianMs: rtts[len(rtts)/2], MinMs: rtts[0]}, nil
}
