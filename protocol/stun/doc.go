// Package stun is pinhole's one STUN codec (RFC 8489 messages, RFC 5780
// NAT-behaviour attributes). The relay answers Binding requests with it and
// the agent builds its NAT-discovery probes and reads the answers with it,
// so both ends agree on the wire by construction and one set of fuzzers and
// captured packets covers both.
//
// STUN never gets a port of its own here. The relay's STUN server shares the
// relay's UDP port with pinhole datagrams, and the agent's probes leave from
// its one socket (package demux) so that the mapping it measures is the
// mapping its tunnel uses (RFC 4787 §4.1: a NAT maps per source transport
// address). Both sides therefore tell STUN from pinhole traffic per
// datagram: a STUN message has its top two bits zero, the magic cookie
// 0x2112A442 in bytes 4-7 and a length field that is a multiple of 4 and
// matches the datagram (RFC 8489 §5); pinhole types start at 0xA1. Is is
// that check, cheap enough for every packet; Parse is the full decoder and
// also verifies FINGERPRINT (RFC 8489 §7, §14.7) when the sender added one.
//
// # Wire format
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|0 0|     STUN Message Type     |         Message Length        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                   Magic Cookie 0x2112A442                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Transaction ID (96 bits)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Attribute type               |  Value length                 |
//	|  Value, padded to a multiple of 4 bytes ...                   |
//
// The message type interleaves a 12-bit method with the two class bits
// (RFC 8489 §5, Figure 3); see Type. Attributes are TLVs (RFC 8489 §14);
// the length counts the value without its padding, and receivers ignore
// the padding's content (RFC 5769 §2.1 pads with spaces).
//
// # NAT discovery
//
// The agent sends Binding requests (BindingRequest) and reads
// XOR-MAPPED-ADDRESS for its mapping (RFC 8489 §14.2). A server with two
// addresses and two ports also returns OTHER-ADDRESS and RESPONSE-ORIGIN and
// honours CHANGE-REQUEST (RFC 5780 §7), which the mapping and filtering
// tests of RFC 5780 §4.3 and §4.4 need. Servers still running RFC 3489 code
// send CHANGED-ADDRESS and SOURCE-ADDRESS instead; those are read-only here.
//
// The package does no I/O and imports only the standard library. Parse
// never panics; attribute values in a parsed Message alias the input.
package stun
