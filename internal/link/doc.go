// Package link turns an established secure.Session into the byte pipe smux
// runs on, over either transport:
//
//   - UDP: a PacketConn that seals every KCP packet into a Data datagram and
//     opens the ones the demultiplexer hands it, so each session has its
//     own keys while many sessions share one socket. KCP runs in our own
//     driver (arq.go) on kcp-go's exported ARQ core rather than in kcp-go's
//     UDPSession, because a relay holds thousands of mostly idle links and
//     UDPSession costs goroutines, large queues and a 10 ms tick per link
//     whether or not anything is in flight. The driver sizes its windows
//     to the measured round trip (pathwindow.go) and adds forward error
//     correction where the link loses packets (fec.go, fecrecv.go).
//     UDPSession remains only for kcp-go's own fixed FEC (data_shards).
//   - TCP fallback: a Stream that carries the same sealed Data datagrams as
//     length-prefixed records, with smux directly on top. TCP is already
//     reliable, so there is no KCP on this path: KCP-over-TCP would only add
//     a second retransmission timer fighting the first.
//
// Handshake datagrams use the same 2-byte length prefix on TCP (Framer), so
// one handshake code path serves both transports.
//
// Both ends call Confirmed when the first packet authenticates: the relay
// uses it for key confirmation (a session becomes live only then). The end
// that may see its peer move (the relay, an agent on a peer session)
// follows NAT rebinding once the new address answers a path challenge
// (path.go); an agent's link to its relay keeps the relay's address.
package link
