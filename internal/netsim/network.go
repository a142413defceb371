package netsim

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// Options tune a simulation.
type Options struct {
	// QueueLen is how many datagrams a socket holds unread before new ones
	// are dropped, as a full socket buffer drops. Default 1024: KCP's
	// window is 1024 packets (link.DefaultTuning), so one full window
	// fits, as it does in the 4-8 MiB buffers agent and relay ask for.
	QueueLen int
}

// world is what every network of one simulation shares.
type world struct {
	queueLen int
	sched    *scheduler

	mu     sync.Mutex // guards conns and closed
	conns  map[*conn]struct{}
	closed bool
}

// Network is one IPv4 segment: hosts and NAT outside interfaces by
// address, and at most one default route, the NAT it sits behind.
type Network struct {
	w  *world
	gw *NAT // default route for addresses not on this segment; nil on the top network

	mu    sync.RWMutex // guards nodes and drop
	nodes map[netip.Addr]node
	drop  func(src, dst netip.AddrPort) bool
}

// node is something with an address on a segment that packets reach.
type node interface{ deliver(p packet) }

// packet is one datagram in flight; b is owned by the packet.
type packet struct {
	src, dst netip.AddrPort
	b        []byte
}

// New starts a simulation and returns its top network (the internet).
// Close stops it.
func New(opts Options) *Network {
	if opts.QueueLen <= 0 {
		opts.QueueLen = 1024
	}
	w := &world{queueLen: opts.QueueLen, sched: newScheduler(), conns: map[*conn]struct{}{}}
	return newNetwork(w, nil)
}

func newNetwork(w *world, gw *NAT) *Network {
	return &Network{w: w, gw: gw, nodes: map[netip.Addr]node{}}
}

// Close closes every socket of the simulation (their reads return
// net.ErrClosed), drops packets still delayed and stops the scheduler's
// goroutine; it returns after that goroutine has exited.
func (n *Network) Close() error {
	w := n.w
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	conns := make([]*conn, 0, len(w.conns))
	for c := range w.conns {
		conns = append(conns, c)
	}
	w.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	w.sched.close()
	return nil
}

func (n *Network) attach(ip netip.Addr, nd node) error {
	if !ip.Is4() {
		return fmt.Errorf("netsim: %v is not an IPv4 address", ip)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nodes[ip] != nil {
		return fmt.Errorf("netsim: address %v already on this network", ip)
	}
	n.nodes[ip] = nd
	return nil
}

// route delivers p to the node owning its destination on this segment, or
// hands it to the NAT this segment sits behind. No route: dropped, as an
// unreachable destination drops UDP.
func (n *Network) route(p packet) {
	n.mu.RLock()
	nd := n.nodes[p.dst.Addr()]
	drop := n.drop
	n.mu.RUnlock()
	if drop != nil && drop(p.src, p.dst) {
		return
	}
	switch {
	case nd != nil:
		nd.deliver(p)
	case n.gw != nil:
		n.gw.outbound(p)
	}
}

// SetDrop installs a firewall rule on this segment: datagrams routed here
// for which drop returns true vanish (nil removes it). Tests cut a path
// with it, as the lab does with an nft drop rule.
func (n *Network) SetDrop(drop func(src, dst netip.AddrPort) bool) {
	n.mu.Lock()
	n.drop = drop
	n.mu.Unlock()
}

// Host is a machine with one IPv4 address on a network.
type Host struct {
	net *Network
	ip  netip.Addr

	mu    sync.Mutex // guards ports and rng
	ports map[uint16]*conn
	rng   *rand.Rand
}

// AddHost puts a host with address ip on n.
func (n *Network) AddHost(ip netip.Addr) (*Host, error) {
	// Ephemeral ports are drawn from a generator seeded by the address,
	// so a failing case picks the same ports when it runs again.
	a4 := ip.As4()
	h := &Host{net: n, ip: ip, ports: map[uint16]*conn{}, rng: rand.New(rand.NewPCG(uint64(a4[3]), uint64(a4[2])))}
	if err := n.attach(ip, h); err != nil {
		return nil, err
	}
	return h, nil
}

// Addr returns the host's address.
func (h *Host) Addr() netip.Addr { return h.ip }

// Ephemeral ports come from the dynamic range of RFC 6335 §6.
const ephemeralMin, ephemeralMax = 49152, 65535

// ListenPacket opens a UDP socket on the host, with net.ListenPacket's
// signature so it fits agent.Config and relay.Config. network is "udp" or
// "udp4"; the address's host part is empty, unspecified or the host's own
// address; port 0 picks a free ephemeral port.
func (h *Host) ListenPacket(network, address string) (net.PacketConn, error) {
	if network != "udp" && network != "udp4" {
		return nil, fmt.Errorf("netsim: listen %s: only udp is simulated", network)
	}
	ap, err := parseListen(address)
	if err != nil {
		return nil, err
	}
	if a := ap.Addr(); a.IsValid() && !a.IsUnspecified() && a != h.ip {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: net.UDPAddrFromAddrPort(ap), Err: syscall.EADDRNOTAVAIL}
	}
	w := h.net.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, net.ErrClosed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	port := ap.Port()
	if port == 0 {
		port = h.freePortLocked()
		if port == 0 {
			return nil, &net.OpError{Op: "listen", Net: network, Err: syscall.EADDRINUSE}
		}
	} else if h.ports[port] != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: net.UDPAddrFromAddrPort(ap), Err: syscall.EADDRINUSE}
	}
	c := newConn(h, netip.AddrPortFrom(h.ip, port), w.queueLen)
	h.ports[port] = c
	w.conns[c] = struct{}{}
	return c, nil
}

func parseListen(address string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("netsim: listen address %q: %w", address, err)
	}
	p, err := net.LookupPort("udp", port)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("netsim: listen address %q: %w", address, err)
	}
	var a netip.Addr
	if host != "" {
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, fmt.Errorf("netsim: listen address %q: %w", address, err)
		}
		a = a.Unmap()
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// freePortLocked picks a free ephemeral port at random (0: none left).
func (h *Host) freePortLocked() uint16 {
	span := ephemeralMax - ephemeralMin + 1
	start := h.rng.IntN(span)
	for i := range span {
		p := uint16(ephemeralMin + (start+i)%span)
		if h.ports[p] == nil {
			return p
		}
	}
	return 0
}

// release frees c's port; called once by c.Close.
func (h *Host) release(c *conn) {
	h.net.w.mu.Lock()
	delete(h.net.w.conns, c)
	h.net.w.mu.Unlock()
	h.mu.Lock()
	if h.ports[c.local.Port()] == c {
		delete(h.ports, c.local.Port())
	}
	h.mu.Unlock()
}

// deliver hands p to the socket bound to its port; none: dropped (a real
// host answers ICMP port unreachable, which UDP senders ignore).
func (h *Host) deliver(p packet) {
	h.mu.Lock()
	c := h.ports[p.dst.Port()]
	h.mu.Unlock()
	if c != nil {
		c.enqueue(p)
	}
}

// send is where a socket's datagrams enter the network.
func (h *Host) send(p packet) { h.net.route(p) }
