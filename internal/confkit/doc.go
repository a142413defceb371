// Package confkit is what agent/config and relay/config share: a strict,
// line-numbered reader over yaml.v3 nodes and the types both roles
// configure the same way (Log, KCP, Protocol, sizes and durations).
//
// Why not decode into tagged structs? yaml.v3's Decoder.KnownFields(true)
// does refuse unknown fields, but a value type with its own UnmarshalYAML
// turns that strictness off for its whole subtree, and a struct keeps no
// line numbers for the semantic checks that follow decoding (a port out of
// range, a duplicate name). An operator on a router over SSH deserves
//
//	agent.yaml:12: expose[1].local: port 70000 out of range (1-65535)
//	agent.yaml:15: expose[2].protcol: unknown field (did you mean "protocol"?)
//
// every problem at once, each with its file, line and field, before any
// socket is opened. So the role packages walk the yaml.Node tree through a
// Map: every field read marks itself known, a missing or malformed value
// becomes an Error at its line and the reader carries on with the default,
// and Doc.Err reports whatever was never asked for as an unknown field.
//
// Nothing here opens a socket or resolves a name: host:port values are
// checked for syntax and port range only, so `pinhole check` gives the same
// answer on a laptop as on the router, and the agent refuses a broken file
// before it touches the network.
package confkit
