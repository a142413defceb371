// Package netsim is an in-memory IPv4 network for tests: hosts with UDP
// sockets that behave like real ones (net.PacketConn), and NAT boxes with
// every RFC 4787 behaviour: mapping (§4.1, REQ-1), port allocation
// (§4.2.1), mapping lifetime and refresh (REQ-5, REQ-6), filtering (§5,
// REQ-8) and hairpinning (REQ-9), plus loss and one-way delay on a NAT's
// uplink. NATs chain, so a home NAT can sit behind a carrier NAT.
//
// Why: the NAT lab (lab/) proves the real binary behind real nftables
// NATs, but it needs root and a minute per run. Traversal logic has
// hundreds of cases (every pair of behaviours, timeouts, flushes, port
// prediction); here each runs in milliseconds without root, and the NAT
// types mirror the lab's behaviours (NATType and lab.Behaviour share
// names) so a case that passes here can be re-run there.
//
// Test support only: no release code imports it. Agent and relay run on it
// through their Configs' ListenPacket hooks, which take Host.ListenPacket.
//
//	inet := netsim.New(netsim.Options{})
//	defer inet.Close()
//	server, _ := inet.AddHost(netip.MustParseAddr("203.0.113.10"))
//	cfg, _ := netsim.Symmetric.Config()
//	nat, _ := inet.AddNAT(netip.MustParseAddr("203.0.113.101"), cfg)
//	client, _ := nat.Inside().AddHost(netip.MustParseAddr("10.0.1.2"))
//	pc, _ := client.ListenPacket("udp4", ":0")
//
// Time is the runtime's clock: mapping timeouts and delays are set in
// milliseconds by tests, and inside a testing/synctest bubble they run on
// the bubble's fake clock, so a 30 s lifetime expires instantly and a
// loaded machine cannot stretch a wait (the self-checks run that way; the
// agent and relay cannot, as kcp-go's scheduler lives outside the bubble).
// A simulation owns one goroutine, the delay scheduler; Close stops it and
// closes every socket.
package netsim
