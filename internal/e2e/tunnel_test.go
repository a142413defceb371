package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"github.com/pinhole/pinhole/internal/seqdgram"
	"github.com/pinhole/pinhole/internal/testenv"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
	"github.com/pinhole/pinhole/relay"
)

// roundTrip sends payload through the exposure at port and returns what the
// echo service sent back.
func roundTrip(t *testing.T, port uint16, payload []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read through tunnel: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write through tunnel: %v", err)
	}
	return got
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// pair is a relay and one agent exposing a TCP echo and a UDP echo.
type pair struct {
	relay            *relay.Relay
	agent            *agent.Agent
	tcpPort, udpPort uint16
	relayCfg         *relay.Config
	relayKey         secure.PrivateKey
	relayLog         *testenv.LogBuffer
	agentLog         *testenv.LogBuffer
}

// startPair starts a pair and waits until both exposures are open.
func startPair(t *testing.T, transport agent.Transport) *pair {
	t.Helper()
	p := &pair{tcpPort: testenv.FreePort(t), udpPort: testenv.FreePort(t)}
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey,
		agent.Exposure{Name: "echo", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: p.tcpPort},
		agent.Exposure{Name: "uecho", Proto: protocol.ProtoUDP, Local: testenv.EchoUDP(t), RemotePort: p.udpPort})
	acfg.Transport = transport
	testenv.Allow(rcfg, acfg, p.tcpPort, p.udpPort)
	p.relayCfg, p.relayKey = rcfg, rcfg.PrivateKey
	p.relay, p.relayLog, _ = testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = p.relay.Addr().String()
	p.agent, p.agentLog, _ = testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 15*time.Second, "exposures open on the relay", func() bool { return testenv.Exposed(p.relay, "echo") && testenv.Exposed(p.relay, "uecho") })
	return p
}

func TestTCPExposure10MiB(t *testing.T) {
	for _, tr := range []agent.Transport{agent.TransportUDP, agent.TransportTCP} {
		t.Run(string(tr), func(t *testing.T) {
			port := startPair(t, tr).tcpPort
			payload := randomBytes(t, 10<<20)
			got := roundTrip(t, port, payload)
			if sha256.Sum256(got) != sha256.Sum256(payload) {
				t.Fatalf("echo through %s tunnel: got %d bytes (sha256 %x), want %d bytes (sha256 %x)",
					tr, len(got), sha256.Sum256(got), len(payload), sha256.Sum256(payload))
			}
		})
	}
}

func TestConcurrentStreams(t *testing.T) {
	port := startPair(t, agent.TransportUDP).tcpPort
	const streams = 200
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Go(func() {
			payload := randomBytes(t, 16<<10+i)
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(port)), 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			go func() { c.Write(payload); c.(*net.TCPConn).CloseWrite() }()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, payload) {
				errs <- fmt.Errorf("stream %d: got %d bytes, want %d (err %v)", i, len(got), len(payload), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestUDPExposureEcho(t *testing.T) {
	port := startPair(t, agent.TransportUDP).udpPort
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(int(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.UDPConn).SetReadBuffer(1 << 20)
	const n = 10000
	received := make([]bool, n)
	var got atomic.Int64
	outOfOrder, corrupt := 0, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		last := -1
		for got.Load() < n {
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			m, err := c.Read(buf)
			if err != nil {
				return
			}
			seq, ok := seqdgram.Parse(buf[:m])
			if !ok || seq >= n {
				corrupt++
				continue
			}
			if !received[seq] {
				received[seq] = true
				got.Add(1)
			}
			if seq < last {
				outOfOrder++
			}
			last = seq
		}
	}()
	// A windowed client (at most `window` datagrams unanswered, as a busy
	// DNS resolver or game client would be), not an unbounded flood.
	const window = 128
	start := time.Now()
	for i := range n {
		for int64(i)-got.Load() >= window && time.Since(start) < 30*time.Second {
			time.Sleep(100 * time.Microsecond)
		}
		c.Write(seqdgram.Make(i))
	}
	<-done
	elapsed := time.Since(start)
	loss := float64(n-got.Load()) / n
	t.Logf("udp echo: sent %d, received %d (loss %.2f%%), out of order %d, corrupt %d, %.0f datagrams/s",
		n, got.Load(), 100*loss, outOfOrder, corrupt, float64(got.Load())/elapsed.Seconds())
	var missing []int
	for i, ok := range received {
		if !ok && len(missing) < 10 {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		t.Logf("first missing sequence numbers: %v", missing)
	}
	if corrupt > 0 {
		t.Fatalf("%d datagrams came back corrupted", corrupt)
	}
	if loss > 0.01 {
		t.Fatalf("lost %.2f%% of datagrams on loopback, want at most 1%%", 100*loss)
	}
}

// TestIPv6Relay: a relay on [::1] and an agent that reaches it over IPv6
// (dual-stack socket, unbatched I/O); 1 MiB through the exposure intact.
func TestIPv6Relay(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("SKIP: no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "[::1]:0")
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "v6", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	testenv.Allow(rcfg, acfg, port)
	r, _, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	a, _, _ := testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 15*time.Second, "exposure open over IPv6", func() bool { return testenv.Exposed(r, "v6") })
	if st := a.Status(); !strings.HasPrefix(st.RelayAddr, "[::1]:") || st.Transport != "udp" {
		t.Fatalf("agent reached the relay at %s over %s, want [::1] over udp", st.RelayAddr, st.Transport)
	}
	payload := randomBytes(t, 1<<20)
	if got := roundTrip(t, port, payload); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("over IPv6: got %d bytes, want %d intact", len(got), len(payload))
	}
}

// TestFEC: with KCP forward error correction on both ends (data_shards 10,
// parity_shards 3) the tunnel still carries data intact.
func TestFEC(t *testing.T) {
	port := testenv.FreePort(t)
	rcfg := testenv.RelayConfig(t, "127.0.0.1:0")
	rcfg.Tuning.DataShards, rcfg.Tuning.ParityShards = 10, 3
	acfg := testenv.AgentConfig(t, "", rcfg.PrivateKey, agent.Exposure{Name: "fec", Proto: protocol.ProtoTCP, Local: testenv.EchoTCP(t), RemotePort: port})
	acfg.Transport = agent.TransportUDP
	acfg.Tuning.DataShards, acfg.Tuning.ParityShards = 10, 3
	testenv.Allow(rcfg, acfg, port)
	r, _, _ := testenv.StartRelay(t, rcfg)
	acfg.Relays[0].Address = r.Addr().String()
	testenv.StartAgent(t, acfg)
	testenv.WaitFor(t, 15*time.Second, "exposure open with FEC", func() bool { return testenv.Exposed(r, "fec") })
	payload := randomBytes(t, 2<<20)
	if got := roundTrip(t, port, payload); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("with FEC: got %d bytes, want %d intact", len(got), len(payload))
	}
}
