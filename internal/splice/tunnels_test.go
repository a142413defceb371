package splice

import (
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/xtaci/smux"
)

// linkPair is two smux sessions over loopback TCP with a Tunnels registry
// at each end; each end's Resets go straight to the other's registry, as
// the control stream would carry them.
type linkPair struct {
	relay, agent   *smux.Session
	relayT, agentT *Tunnels
	stats          Stats
	wg             sync.WaitGroup // the spliced copies
}

func newLinkPair(t *testing.T) *linkPair {
	a, b := tcpPair(t)
	cfg := smux.DefaultConfig()
	cfg.Version, cfg.KeepAliveDisabled = 2, true
	cfg.MaxStreamBuffer, cfg.MaxReceiveBuffer = 1<<20, math.MaxInt32/2
	p := &linkPair{}
	// Each end's smux reads through Arrivals, as a link's does, so idle
	// copies park (park.go).
	relayArr, agentArr := NewArrivals(), NewArrivals()
	var err error
	if p.relay, err = smux.Client(relayArr.Wrap(a), cfg); err != nil {
		t.Fatal(err)
	}
	if p.agent, err = smux.Server(agentArr.Wrap(b), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.relay.Close(); p.agent.Close() })
	p.relayT = NewTunnels(NewGuard(4), &p.stats, func(m protocol.Reset) error { p.agentT.Reset(m.Stream); return nil })
	p.agentT = NewTunnels(NewGuard(4), &p.stats, func(m protocol.Reset) error { p.relayT.Reset(m.Stream); return nil })
	p.relayT.SetArrivals(relayArr)
	p.agentT.SetArrivals(agentArr)
	return p
}

// splice tunnels one connection: client <-> relay <-stream-> agent <-> service.
// It returns the client's and the service's ends and a channel that gets
// both ends' results.
func (p *linkPair) splice(t *testing.T) (client, service *net.TCPConn, done chan Result) {
	client, relayIn := tcpPair(t)
	agentOut, service := tcpPair(t)
	done = make(chan Result, 2)
	st, err := p.relay.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	p.relayT.Splice(relayIn, st, 0, &p.wg, func(r Result) { done <- r })
	ast, err := p.agent.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	p.agentT.Splice(agentOut, ast, 0, &p.wg, func(r Result) { done <- r })
	return client, service, done
}

func waitBoth(t *testing.T, done chan Result, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for range 2 {
		select {
		case res := <-done:
			if !res.Aborted() {
				t.Errorf("got %+v, want an aborted splice", res)
			}
		case <-deadline:
			t.Fatalf("both ends not released within %v", within)
		}
	}
}

// TestTunnelAbortedDownload: the client reads a little of an endless
// download and leaves; the agent's end, blocked writing to the stream,
// is released and the service gets a reset.
func TestTunnelAbortedDownload(t *testing.T) {
	p := newLinkPair(t)
	client, service, done := p.splice(t)
	werr := make(chan error, 1)
	go func() {
		chunk := make([]byte, 32<<10)
		for {
			if _, err := service.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
	}()
	io.ReadFull(client, make([]byte, 4<<10))
	time.Sleep(100 * time.Millisecond) // let the stream's window fill
	Reset(client)
	waitBoth(t, done, time.Second)
	select {
	case err := <-werr:
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Errorf("service write: got %v, want a reset", err)
		}
	case <-time.After(time.Second):
		t.Error("service still writing a second after the client left")
	}
	if p.stats.ResetSent.Load() != 1 || p.stats.ResetReceived.Load() != 1 {
		t.Errorf("resets sent/received: got %d/%d, want 1/1", p.stats.ResetSent.Load(), p.stats.ResetReceived.Load())
	}
	if n := p.relayT.Len() + p.agentT.Len(); n != 0 {
		t.Errorf("streams still tracked: %d", n)
	}
}

// TestTunnelAbortedUpload: the service reads a little and resets while the
// client keeps uploading; the client gets a reset within a second.
func TestTunnelAbortedUpload(t *testing.T) {
	p := newLinkPair(t)
	client, service, done := p.splice(t)
	werr := make(chan error, 1)
	go func() {
		chunk := make([]byte, 32<<10)
		for {
			if _, err := client.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
	}()
	io.ReadFull(service, make([]byte, 4<<10))
	time.Sleep(100 * time.Millisecond)
	Reset(service)
	waitBoth(t, done, time.Second)
	select {
	case err := <-werr:
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Errorf("client write: got %v, want a reset", err)
		}
	case <-time.After(time.Second):
		t.Error("client still uploading a second after the service reset")
	}
}

// TestTunnelLinkDeath: when the link dies mid-download, the client gets a
// reset, not the clean end of a truncated stream.
func TestTunnelLinkDeath(t *testing.T) {
	p, client, _, done := downloadOnDyingLink(t, false)
	io.ReadFull(client, make([]byte, 64<<10))
	p.relay.Close()
	p.agent.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, client); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after link death: got %v, want ECONNRESET", err)
	}
	waitBoth(t, done, time.Second)
}

// TestTunnelEarlyReset: a Reset that arrives before its stream is tracked
// (the agent is still dialing the service) aborts it when it is.
func TestTunnelEarlyReset(t *testing.T) {
	var stats Stats
	tn := NewTunnels(NewGuard(1), &stats, func(protocol.Reset) error { return nil })
	tn.Reset(7)
	aborted := false
	tn.Track(7, func() { aborted = true })()
	if !aborted {
		t.Fatal("stream reset before it was tracked was not aborted")
	}
	aborted = false
	tn.Track(9, func() { aborted = true })()
	if aborted {
		t.Fatal("another stream was aborted by the early reset")
	}
}

// TestTunnelLinkDown: the link dies under a download whose client stopped
// reading and sends nothing. Neither of the relay end's copies would see
// the stream's error (one is blocked writing to the client, the other
// reading from it); LinkDown must release both ends at once, with an RST
// to the client and to the service.
func TestTunnelLinkDown(t *testing.T) {
	p, client, _, done := downloadOnDyingLink(t, true)
	time.Sleep(300 * time.Millisecond) // the client's socket and the stream's window fill
	p.relay.Close()
	p.agent.Close()
	p.relayT.LinkDown()
	p.agentT.LinkDown()
	waitBoth(t, done, time.Second)
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, client); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client after the link died: %v, want ECONNRESET", err)
	}
}

// downloadOnDyingLink splices a client and a service whose link's control
// stream is already dead (no Reset gets across), with the service writing
// without end and, if slow, the client reading slowly (a small receive
// buffer). A slow client drains what the relay end took in before the link
// died at a trickle (large writes into a 4 KiB window wait for
// retransmission timers), so the reset that follows it comes late; tests
// that wait for that reset use a normal client.
func downloadOnDyingLink(t *testing.T, slow bool) (p *linkPair, client, service *net.TCPConn, done chan Result) {
	p = newLinkPair(t)
	dead := func(protocol.Reset) error { return io.ErrClosedPipe }
	p.relayT.send, p.agentT.send = dead, dead
	client, service, done = p.splice(t)
	if slow {
		client.SetReadBuffer(4096)
	}
	go func() {
		chunk := make([]byte, 32<<10)
		for {
			if _, err := service.Write(chunk); err != nil {
				return
			}
		}
	}()
	return p, client, service, done
}
