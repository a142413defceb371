package netcheck

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/stun"
)

// maxSequentialDelta bounds the port step still called sequential: NATs
// that allocate in order step by 1 or 2 (the seed's "port delta"); larger
// equal steps between three mappings are more likely chance.
const maxSequentialDelta = 16

// Check measures the NAT. It returns ErrNoUDP (with the report's UDP set
// to No) when the relay's STUN server does not answer at all.
func (c *Checker) Check(ctx context.Context) (protocol.NATReport, error) {
	r := protocol.NATReport{Local: c.cfg.Local}
	binding := func(change stun.ChangeRequest) (stun.TxID, []byte) {
		tx := stun.NewTxID()
		return tx, stun.BindingRequest(tx, change)
	}

	// Test I (RFC 5780 §4.3): the mapping of the main socket, and the
	// server's other address.
	tx, req := binding(0)
	a, ok := c.transact(ctx, c.mainSend(c.cfg.Relay), c.cfg.Relay, tx, req, 2*answerWait)
	if !ok {
		r.UDP = protocol.No
		return r, fmt.Errorf("relay %s: %w within %v", c.cfg.Relay, ErrNoUDP, 2*answerWait)
	}
	r.UDP = protocol.Yes
	m1, err := a.msg.XORMappedAddress()
	if err != nil {
		return r, fmt.Errorf("relay %s: STUN answer without XOR-MAPPED-ADDRESS", c.cfg.Relay)
	}
	r.Public = m1
	other, err := a.msg.OtherAddress()
	behaviour := err == nil && other.Addr() != c.cfg.Relay.Addr() && other.Port() != c.cfg.Relay.Port()

	// Mapping (RFC 5780 §4.3 tests II and III), on the main socket.
	switch {
	case behaviour:
		r.Mapping = c.mapping(ctx, m1, other)
	case r.NoNAT():
		r.Mapping = protocol.MappingEndpointIndependent // no NAT, no mapping to change
	}

	// Filtering (§4.4) on a fresh mapping, and port allocation from it and
	// two more fresh sockets, while the filtering test waits for the
	// responses that should not come.
	f, err := c.openProbe()
	if err != nil {
		return r, fmt.Errorf("open probe socket: %w", err)
	}
	defer f.close()
	tx, req = binding(0)
	fa, ok := c.transact(ctx, f.send(c.cfg.Relay), c.cfg.Relay, tx, req, answerWait)
	if !ok {
		return r, nil // the main socket got answers; a probe did not: leave the rest unknown
	}
	fm, _ := fa.msg.XORMappedAddress()
	filtering := make(chan protocol.Filtering, 1)
	go func() {
		if behaviour {
			filtering <- c.filtering(ctx, f, other)
		} else {
			filtering <- protocol.FilteringUnknown
		}
	}()
	r.Ports, r.Delta = c.ports(ctx, f.local, fm)
	r.Hairpin = c.hairpin(ctx, r)
	r.Filtering = <-filtering
	return r, nil
}

// mapping runs tests II and III from the main socket.
func (c *Checker) mapping(ctx context.Context, m1, other netip.AddrPort) protocol.Mapping {
	tx := stun.NewTxID()
	ii := netip.AddrPortFrom(other.Addr(), c.cfg.Relay.Port())
	a, ok := c.transact(ctx, c.mainSend(ii), ii, tx, stun.BindingRequest(tx, 0), answerWait)
	if !ok {
		return protocol.MappingUnknown
	}
	m2, _ := a.msg.XORMappedAddress()
	if m2 == m1 {
		return protocol.MappingEndpointIndependent
	}
	tx = stun.NewTxID()
	a, ok = c.transact(ctx, c.mainSend(other), other, tx, stun.BindingRequest(tx, 0), answerWait)
	if !ok {
		return protocol.MappingUnknown
	}
	if m3, _ := a.msg.XORMappedAddress(); m3 == m2 {
		return protocol.MappingAddressDependent
	}
	return protocol.MappingAddressPortDependent
}

// filtering asks the relay to answer probe f's requests from its other IP
// and port, and from its other port only, in parallel: both requests go to
// the relay's primary address, so the NAT's state is the same for both.
func (c *Checker) filtering(ctx context.Context, f *probe, other netip.AddrPort) protocol.Filtering {
	type result struct {
		change stun.ChangeRequest
		ok     bool
	}
	res := make(chan result, 2)
	from := map[stun.ChangeRequest]netip.AddrPort{
		stun.ChangeIP | stun.ChangePort: other,
		stun.ChangePort:                 netip.AddrPortFrom(c.cfg.Relay.Addr(), other.Port()),
	}
	for change, want := range from {
		go func() {
			tx := stun.NewTxID()
			_, ok := c.transact(ctx, f.send(c.cfg.Relay), want, tx, stun.BindingRequest(tx, change), negativeWait)
			res <- result{change, ok}
		}()
	}
	var both, port bool
	for range 2 {
		r := <-res
		if r.change == stun.ChangePort {
			port = r.ok
		} else {
			both = r.ok
		}
	}
	switch {
	case both:
		return protocol.FilteringEndpointIndependent
	case port:
		return protocol.FilteringAddressDependent
	}
	return protocol.FilteringAddressPortDependent
}

// portSamples is how many fresh mappings ports compares (the first is the
// filtering probe's). Three would do on a quiet NAT, but the agent may be
// punching towards peers while it measures, and on a symmetric NAT every
// punched destination takes the next port too: five mappings let the
// NAT's own step show more than once between such interlopers.
const portSamples = 5

// ports compares fresh mappings made one after another: preserved when
// each kept its local port, else as classifyPorts says.
func (c *Checker) ports(ctx context.Context, firstLocal, firstMapped netip.AddrPort) (protocol.PortAllocation, int) {
	locals := []netip.AddrPort{firstLocal}
	mapped := []netip.AddrPort{firstMapped}
	for range portSamples - 1 {
		p, err := c.openProbe()
		if err != nil {
			return protocol.PortsUnknown, 0
		}
		tx := stun.NewTxID()
		a, ok := c.transact(ctx, p.send(c.cfg.Relay), c.cfg.Relay, tx, stun.BindingRequest(tx, 0), answerWait)
		p.close()
		if !ok {
			return protocol.PortsUnknown, 0
		}
		m, _ := a.msg.XORMappedAddress()
		locals, mapped = append(locals, p.local), append(mapped, m)
	}
	preserved := true
	for i := range mapped {
		preserved = preserved && mapped[i].Port() == locals[i].Port()
	}
	if preserved {
		return protocol.PortsPreserved, 0
	}
	ports := make([]int, len(mapped))
	for i, m := range mapped {
		ports[i] = int(m.Port())
	}
	return classifyPorts(ports)
}

// classifyPorts calls mapped ports taken one after another sequential
// when every step goes the same way by at most maxSequentialDelta and the
// smallest step, the NAT's own, is at least half of them (larger steps
// are ports other traffic took in between); random otherwise. A NAT that
// picks ports at random from thousands almost never makes four small
// steps in one direction.
func classifyPorts(ports []int) (protocol.PortAllocation, int) {
	if len(ports) < 3 {
		return protocol.PortsUnknown, 0
	}
	step := 0
	for i := 1; i < len(ports); i++ {
		d := ports[i] - ports[i-1]
		if d == 0 || d > maxSequentialDelta || d < -maxSequentialDelta || (step != 0 && (d > 0) != (step > 0)) {
			return protocol.PortsRandom, 0
		}
		if step == 0 || abs(d) < abs(step) {
			step = d
		}
	}
	same := 0
	for i := 1; i < len(ports); i++ {
		if ports[i]-ports[i-1] == step {
			same++
		}
	}
	if 2*same < len(ports)-1 {
		return protocol.PortsRandom, 0
	}
	return protocol.PortsSequential, step
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// hairpin sends a Binding request from a fresh socket to the main
// socket's public mapping: it arrives (and Deliver sees our transaction
// as a request) only if the NAT hairpins (RFC 4787 REQ-9).
func (c *Checker) hairpin(ctx context.Context, r protocol.NATReport) protocol.Tristate {
	if r.NoNAT() {
		return protocol.Yes
	}
	p, err := c.openProbe()
	if err != nil {
		return protocol.Unknown
	}
	defer p.close()
	tx := stun.NewTxID()
	ch, done := c.expect(tx)
	defer done()
	req := stun.BindingRequest(tx, 0)
	send := p.send(r.Public)
	t := time.NewTimer(negativeWait)
	defer t.Stop()
	send(req)
	resend := time.NewTimer(firstRetransmit)
	defer resend.Stop()
	for {
		select {
		case <-ctx.Done():
			return protocol.Unknown
		case <-t.C:
			return protocol.No
		case <-resend.C:
			send(req)
		case a := <-ch:
			if a.msg.Type == stun.TypeBindingRequest {
				return protocol.Yes
			}
		}
	}
}

// Fresh makes one new mapping (a Binding from a fresh probe socket to the
// relay) and returns it: behind a NAT that allocates ports in sequence,
// the next mapping the agent makes will be this one's port plus the delta,
// which is what a punching peer must aim at (port prediction).
func (c *Checker) Fresh(ctx context.Context) (netip.AddrPort, error) {
	p, err := c.openProbe()
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer p.close()
	tx := stun.NewTxID()
	a, ok := c.transact(ctx, p.send(c.cfg.Relay), c.cfg.Relay, tx, stun.BindingRequest(tx, 0), answerWait)
	if !ok {
		return netip.AddrPort{}, ErrNoUDP
	}
	m, _ := a.msg.XORMappedAddress()
	return m, nil
}
