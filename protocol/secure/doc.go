// Package secure authenticates the two ends of a link and seals its packets.
//
// The handshake is Noise IK (Noise Protocol Framework rev 34, pattern IK,
// Noise_IK_25519_ChaChaPoly_BLAKE2s), the pattern WireGuard uses, built from
// golang.org/x/crypto primitives exactly as the specification defines them;
// nothing here is new cryptography. X25519 is crypto/ecdh on amd64 and
// arm64 and, to keep crypto/ecdh's P-256 self-test out of the router
// binaries, RFC 7748's ladder as the RFC writes it elsewhere (x25519.go). IK fits because the agent already pins the
// relay's static key: one round trip authenticates both ends, the agent's
// static key travels encrypted, and both sides derive fresh per-session keys.
// No secret ever crosses the wire.
//
// Replays: the initiator's first payload is a 12-byte TAI64N-style timestamp
// and a cookie echo. The responder refuses a timestamp not newer than that of
// the key's last confirmed session (Replay) unless the echoed cookie is one
// it handed to that address within the last two rotation periods (cookie.go):
// then the message is fresh whatever the initiator's clock says. A replayed
// message cannot produce a usable session anyway (the replayer has no keys),
// and callers treat a session as live only after its first authenticated
// Data packet, recording its timestamp only then.
//
// Denial of service: message 1 ends in mac1 and mac2 (WireGuard's scheme):
// junk fails mac1 before any Diffie-Hellman work, and under load mac2 with a
// cookie proves the sender receives at its source address (cookie.go).
//
// Transport: each Data datagram is sealed with ChaCha20-Poly1305, chosen
// because router CPUs (MIPS 24Kc, Cortex-A7) have no AES instructions. The
// nonce is the 64-bit counter in the clear header; the header is the
// associated data; a sliding window refuses duplicates and very old packets
// (RFC 6479 style bitmap).
package secure
