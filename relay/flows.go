package relay

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinhole/pinhole/protocol"
)

const (
	// maxFlows bounds the client addresses one UDP exposure tracks; more
	// are dropped (and counted) instead of exhausting the relay.
	maxFlows = 1024
	// flowQueue bounds datagrams waiting for one flow's stream. A client
	// that sends faster than its stream drains loses datagrams, as it
	// would on a congested link; it never blocks the socket reader, so
	// one busy client cannot starve the others.
	flowQueue = 256
)

// flowTable maps client addresses of one UDP exposure to their streams.
type flowTable struct {
	e       *exposure
	mu      sync.Mutex // guards flows
	flows   map[netip.AddrPort]*flow
	dropped atomic.Uint64
}

type flow struct {
	client netip.AddrPort
	queue  chan []byte
	last   atomic.Int64
	done   chan struct{}
	once   sync.Once
}

func (f *flow) stop() { f.once.Do(func() { close(f.done) }) }

func newFlowTable(e *exposure) *flowTable {
	return &flowTable{e: e, flows: map[netip.AddrPort]*flow{}}
}

func (t *flowTable) readLoop() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := t.e.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if isClosed(err) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		t.mu.Lock()
		f := t.flows[from]
		if f == nil {
			if len(t.flows) >= maxFlows {
				t.mu.Unlock()
				t.dropped.Add(1)
				continue
			}
			f = &flow{client: from, queue: make(chan []byte, flowQueue), done: make(chan struct{})}
			t.flows[from] = f
			t.e.s.r.sessions.Go(func() { t.serve(f) })
		}
		t.mu.Unlock()
		f.last.Store(time.Now().UnixNano())
		select {
		case f.queue <- append([]byte(nil), buf[:n]...):
		default:
			t.dropped.Add(1)
		}
	}
}

// serve opens the flow's stream and pumps datagrams both ways until the
// flow idles out, the exposure closes or the agent closes the stream.
func (t *flowTable) serve(f *flow) {
	defer func() {
		t.mu.Lock()
		delete(t.flows, f.client)
		t.mu.Unlock()
	}()
	st, err := t.e.s.link.Mux.OpenStream()
	if err != nil {
		return
	}
	defer st.Close()
	hdr := protocol.AppendStreamHeader(nil, protocol.StreamHeader{Proto: protocol.ProtoUDP, Exposure: t.e.name,
		Client: f.client, Server: addrPortOf(t.e.udp.LocalAddr())})
	if _, err := st.Write(hdr); err != nil {
		return
	}
	defer t.e.s.tunnels.Track(st.ID(), func() { f.stop(); st.Close() })()
	go func() {
		defer f.stop()
		buf := make([]byte, protocol.MaxUDPPayload)
		for {
			p, err := protocol.ReadUDPFrame(st, buf)
			if err != nil {
				return
			}
			f.last.Store(time.Now().UnixNano())
			t.e.udp.WriteToUDPAddrPort(p, f.client)
		}
	}()
	frame := make([]byte, 0, 2+protocol.MaxUDPPayload)
	for {
		select {
		case <-f.done:
			return
		case <-t.e.end:
			return
		case p := <-f.queue:
			frame, _ = protocol.AppendUDPFrame(frame[:0], p)
			if _, err := st.Write(frame); err != nil {
				return
			}
		}
	}
}

// expireLoop ends flows idle longer than the relay's UDP flow timeout.
func (t *flowTable) expireLoop() {
	idle := t.e.s.r.cfg.Load().flowIdle()
	tick := time.NewTicker(idle / 4)
	defer tick.Stop()
	for {
		select {
		case <-t.e.end:
			return
		case <-tick.C:
			now := time.Now().UnixNano()
			t.mu.Lock()
			for _, f := range t.flows {
				if time.Duration(now-f.last.Load()) > idle {
					f.stop()
				}
			}
			t.mu.Unlock()
		}
	}
}

func (t *flowTable) closeAll() {
	t.mu.Lock()
	for _, f := range t.flows {
		f.stop()
	}
	t.mu.Unlock()
}
