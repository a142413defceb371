// Package protocol is everything the agent and the relay must agree on: the
// datagram types that share one UDP port, the control messages carried on
// the first smux stream, the header of every tunneled stream, the version
// rule and the KCP/smux parameters. It does no I/O and imports only the
// standard library, so both ends and the fuzzers can use it freely.
//
// # Datagrams
//
// One UDP port carries STUN (RFC 8489, recognised by its magic cookie) and
// pinhole datagrams, whose first byte is a Type. Types start at 0xA1 so the
// first two bits are never 00, the bits RFC 8489 §6 fixes for STUN; a
// demultiplexer can tell the two apart from the first byte alone.
//
//	HandshakeInit  agent -> relay   Noise IK message 1 (see package secure)
//	HandshakeResp  relay -> agent   Noise IK message 2
//	Data           both             sealed KCP packet of an established session
//	Refuse         relay -> agent   unauthenticated hint: bad version, unknown session or key
//	CookieReply    relay -> agent   "prove your address / freshness": a cookie for the next HandshakeInit
//
// Over the TCP fallback the same datagrams travel length-prefixed
// (2 bytes, big endian), so one codec and one crypto serve both transports.
//
// # Message flow
//
//	agent                                   relay
//	HandshakeInit (version, e, s, {ts, cookie}, mac1, mac2) ---->
//	                                  <---- CookieReply (only under load, or for a stale timestamp)
//	HandshakeInit again, with the cookie ---->
//	                                  <---- HandshakeResp (e, observed addr, relay time)
//	Data{KCP{smux}} <======================> Data{KCP{smux}}
//	  stream 1 (agent opens): control: Hello, Register, Ping/Pong, Notice, Reset
//	  stream N (relay opens): StreamHeader{kind, exposure, client} then bytes
//
// The relay treats a session as live only after its first authenticated
// Data packet (key confirmation), so a replayed HandshakeInit cannot
// displace the agent's real session.
package protocol
