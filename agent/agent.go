// Package agent is the router end of pinhole. It keeps one authenticated
// link to a relay (the first of its list that answers), registers the
// agent's exposures there, and serves every stream the relay opens by
// connecting to the local service the exposure names. It never gives up:
// a router boots before its uplink, relays restart, NATs forget mappings,
// and procd stops respawning a service that keeps exiting, so every failure
// becomes a retry with capped, jittered backoff.
package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pinhole/pinhole/agent/internal/demux"
	"github.com/pinhole/pinhole/agent/internal/expose"
	"github.com/pinhole/pinhole/agent/internal/proxyproto"
	"github.com/pinhole/pinhole/agent/internal/relaylink"
	"github.com/pinhole/pinhole/internal/admin"
	"github.com/pinhole/pinhole/internal/slog"
)

// Software identifies this build to the relay; cmd/pinhole sets it.
var Software = "pinhole-dev"

// Agent runs the agent role. Create it with New, run it with Run.
type Agent struct {
	log      *slog.Logger
	cfg      atomic.Pointer[Config]
	services atomic.Pointer[map[string]*expose.Service]
	reload   chan struct{}
	stats    expose.Stats
	links    linkStats // relay link events for status (linkstats.go)
	sock     *demux.Socket
	prepared relaylink.Prepared // the key prepared per relay, across dials
	adminLn  net.Listener
	streams  sync.WaitGroup
	state    state
	// dupWarned: the relay's "another agent uses this key" was logged.
	dupWarned atomic.Bool
	natWake   chan natWake // to natLoop: measure against this relay
	// retune: the heartbeat interval changed (a measured mapping
	// lifetime); the link's watchReload announces it.
	retune chan struct{}
	// portmap is the gateway's mapping of sock (nil: none); portmaploop.go.
	portmap atomic.Pointer[PortMapping]
	// silentDeath: a link died by silence; the next NAT wake measures
	// the mapping lifetime again (the heartbeat may have outlasted it).
	silentDeath atomic.Bool
	// peers: sessions with other agents (peers.go).
	peers     *peerManager
	connects  []connectListener // local sockets of the connect entries
	netChange netChange         // NetworkChanged (netchange.go)
}

// New checks cfg and opens the agent's local sockets (the UDP socket and
// the admin endpoint). It does not contact any relay.
func New(cfg *Config, log *slog.Logger) (*Agent, error) {
	if len(cfg.Relays) == 0 {
		return nil, fmt.Errorf("no relays configured")
	}
	cfg = cfg.withDefaults()
	a := &Agent{log: log, reload: make(chan struct{}, 1), natWake: make(chan natWake, 1), retune: make(chan struct{}, 1)}
	a.cfg.Store(cfg)
	a.services.Store(buildServices(cfg, nil))
	sock, err := demux.ListenWith(cfg.ListenPacket, cfg.ListenPort, wantsIPv6(cfg))
	if err != nil {
		return nil, err
	}
	a.sock = sock
	a.peers = newPeerManager(a)
	if a.connects, err = listenConnects(cfg); err != nil {
		sock.Close()
		return nil, err
	}
	if cfg.Admin != "" {
		if a.adminLn, err = admin.Listen(cfg.Admin, false); err != nil {
			closeConnects(a.connects)
			sock.Close()
			return nil, err
		}
	}
	return a, nil
}

// wantsIPv6 reports whether a relay is given as an IPv6 literal; only then
// does the agent open a dual-stack socket.
func wantsIPv6(cfg *Config) bool {
	for _, r := range cfg.Relays {
		if ap, err := netip.ParseAddrPort(r.Address); err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6() {
			return true
		}
	}
	return false
}

// LocalAddr returns the agent's UDP socket address.
func (a *Agent) LocalAddr() string { return a.sock.LocalAddr().String() }

// buildServices turns the config's exposures into services, keeping the
// existing Service of an unchanged exposure so its flow counter survives.
func buildServices(cfg *Config, old map[string]*expose.Service) *map[string]*expose.Service {
	m := make(map[string]*expose.Service, len(cfg.Expose))
	for _, e := range cfg.Expose {
		svc := &expose.Service{Name: e.Name, Proto: e.Proto, Local: e.Local, IdleTimeout: e.IdleTimeout, MaxFlows: e.MaxFlows}
		switch e.ProxyProtocol {
		case "v1":
			svc.Proxy = proxyproto.V1
		case "v2":
			svc.Proxy = proxyproto.V2
		}
		if svc.MaxFlows == 0 {
			svc.MaxFlows = 256
		}
		if prev := old[e.Name]; prev != nil && prev.Proto == svc.Proto && prev.Local == svc.Local &&
			prev.Proxy == svc.Proxy && prev.IdleTimeout == svc.IdleTimeout && prev.MaxFlows == svc.MaxFlows {
			svc = prev
		}
		m[e.Name] = svc
	}
	return &m
}

// Reload applies a new configuration: exposures are added and removed on
// the live link without disturbing the others. Relay list and key changes
// take effect at the next reconnect.
func (a *Agent) Reload(cfg *Config) {
	cfg = cfg.withDefaults()
	a.cfg.Store(cfg)
	a.services.Store(buildServices(cfg, *a.services.Load()))
	a.peers.configure(cfg)
	select {
	case a.reload <- struct{}{}:
	default:
	}
	a.log.Info("agent config reloaded", "exposures", len(cfg.Expose))
}

// Run connects and serves until ctx ends; it returns only then, after every
// goroutine it started has stopped.
func (a *Agent) Run(ctx context.Context) error {
	defer a.sock.Close()
	var wg sync.WaitGroup
	if a.adminLn != nil {
		wg.Go(func() { admin.Serve(ctx, a.adminLn, func() admin.Document { return a.Status() }) })
	}
	cfg := a.cfg.Load()
	a.log.Info("agent up", "name", cfg.Name, "udp", a.sock.LocalAddr(), "relays", len(cfg.Relays), "exposures", len(cfg.Expose))
	// Siblings, each until ctx ends: a relay reconnect does not restart
	// NAT discovery (or, later, port mapping and peer sessions).
	wg.Go(func() { a.portmapLoop(ctx) })
	wg.Go(func() { a.relayLoop(ctx) })
	wg.Go(func() { a.peers.run(ctx) })
	for _, l := range a.connects {
		w := a.peers.wants[l.c.Peer]
		wg.Go(func() { a.serveConnect(ctx, l, w) })
	}
	wg.Go(func() { a.natLoop(ctx) })
	wg.Wait()
	a.streams.Wait()
	a.log.Info("agent stopped")
	return nil
}

func (a *Agent) dial(ctx context.Context, cfg *Config, r Relay) (*relaylink.Conn, error) {
	mode := relaylink.Auto
	switch cfg.Transport {
	case TransportUDP:
		mode = relaylink.UDPOnly
	case TransportTCP:
		mode = relaylink.TCPOnly
	}
	d := a.dialer(cfg)
	dctx, cancel := context.WithTimeout(ctx, relayDialWait)
	defer cancel()
	return d.Dial(dctx, relaylink.Target{Address: r.Address, PublicKey: r.PublicKey}, mode)
}

func (a *Agent) dialer(cfg *Config) *relaylink.Dialer {
	return &relaylink.Dialer{Key: cfg.PrivateKey, Socket: a.sock, Tuning: cfg.Tuning, Log: a.log, UDPWait: cfg.UDPWait, Now: cfg.Clock, Prepared: &a.prepared}
}
