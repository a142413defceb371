package secure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/flynn/noise"
	"github.com/pinhole/pinhole/protocol"
)

func mustKey(t testing.TB) PrivateKey {
	t.Helper()
	k, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func handshake(t *testing.T, agent, relay PrivateKey) (*Session, *Session) {
	t.Helper()
	in, m1, err := Initiate(agent, relay.Public(), 7, Timestamp(time.Now()), Cookie{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m1) != InitLen {
		t.Fatalf("message 1 is %d bytes, want %d", len(m1), InitLen)
	}
	r, err := Consume(relay, m1)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if r.Peer != agent.Public() || r.PeerIndex != 7 {
		t.Fatalf("responder saw peer %v index %d, want %v 7", r.Peer, r.PeerIndex, agent.Public())
	}
	rs, m2, err := r.Respond(9, []byte("observed"))
	if err != nil {
		t.Fatal(err)
	}
	as, payload, err := in.Finish(m2)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	if string(payload) != "observed" {
		t.Fatalf("payload %q, want %q", payload, "observed")
	}
	return as, rs
}

func TestHandshakeAndTransport(t *testing.T) {
	agent, relay := mustKey(t), mustKey(t)
	as, rs := handshake(t, agent, relay)
	if as.RemoteIndex != 9 || rs.RemoteIndex != 7 {
		t.Fatalf("indices: agent->%d relay->%d, want 9 and 7", as.RemoteIndex, rs.RemoteIndex)
	}
	for i, msg := range []string{"hello", "", "third"} {
		pkt, err := as.Seal(nil, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		got, err := rs.Open(nil, pkt)
		if err != nil || string(got) != msg {
			t.Fatalf("packet %d: got %q, %v; want %q", i, got, err, msg)
		}
		if _, err := rs.Open(nil, pkt); !errors.Is(err, ErrReplay) {
			t.Fatalf("packet %d replayed: got %v, want ErrReplay", i, err)
		}
		back, _ := rs.Seal(nil, []byte(msg))
		if got, err := as.Open(nil, back); err != nil || string(got) != msg {
			t.Fatalf("reply %d: got %q, %v", i, got, err)
		}
	}
}

// TestInitiationFlags: the flags an initiator puts in the clear header
// reach the responder (mac1 covers them), and plain Initiate sends none.
func TestInitiationFlags(t *testing.T) {
	agent, relay := mustKey(t), mustKey(t)
	for _, flags := range []byte{0, protocol.FlagParkable} {
		_, m1, err := InitiateFlags(agent, relay.Public(), 7, Timestamp(time.Now()), Cookie{}, flags)
		if err != nil {
			t.Fatal(err)
		}
		if !NewMACChecker(relay).CheckMAC1(m1) {
			t.Fatalf("flags %d: mac1 does not verify", flags)
		}
		r, err := Consume(relay, m1)
		if err != nil || r.Flags != flags {
			t.Fatalf("flags %d: responder read %d, %v", flags, r.Flags, err)
		}
	}
}

func TestHandshakeRefusals(t *testing.T) {
	agent, relay, other := mustKey(t), mustKey(t), mustKey(t)

	// The agent pins the wrong relay key: the relay cannot read message 1.
	_, m1, _ := Initiate(agent, other.Public(), 1, Timestamp(time.Now()), Cookie{})
	if _, err := Consume(relay, m1); err == nil {
		t.Fatal("message 1 for another relay key was accepted")
	}

	// A response from a relay with the wrong key fails at the agent.
	in, m1, _ := Initiate(agent, relay.Public(), 1, Timestamp(time.Now()), Cookie{})
	r, err := Consume(relay, m1)
	if err != nil {
		t.Fatal(err)
	}
	_, m2, _ := r.Respond(2, nil)
	forged := append([]byte(nil), m2...)
	forged[len(forged)-1] ^= 1
	if _, _, err := in.Finish(forged); err == nil {
		t.Fatal("tampered message 2 accepted")
	}
	if _, _, err := in.Finish(m2); err != nil {
		t.Fatalf("real message 2 after a forged one: %v", err)
	}

	// Every flipped bit of message 1 (after the header) is detected: in
	// the Noise part by Consume, in mac1 by the MAC check (mac2 is only
	// checked against a cookie; see cookie_test.go).
	mc := NewMACChecker(relay)
	for i := protocol.HandshakeHeaderLen; i < InitLen-MACLen; i++ {
		bad := append([]byte(nil), m1...)
		bad[i] ^= 0x40
		if _, err := Consume(relay, bad); err == nil && mc.CheckMAC1(bad) {
			t.Fatalf("message 1 with byte %d flipped accepted", i)
		}
	}

	// Unknown version is refused by name.
	v2 := append([]byte(nil), m1...)
	v2[1] = protocol.Version + 1
	if _, err := Consume(relay, v2); !errors.Is(err, ErrVersion) {
		t.Fatalf("another version: got %v, want ErrVersion", err)
	}
}

func TestReplayedInitiationRefused(t *testing.T) {
	agent, relay := mustKey(t), mustKey(t)
	var replay Replay
	now := time.Now()
	_, m1, _ := Initiate(agent, relay.Public(), 1, Timestamp(now), Cookie{})
	r, err := Consume(relay, m1)
	if err != nil {
		t.Fatal(err)
	}
	if !replay.Fresh(r.Peer, r.Timestamp) {
		t.Fatal("first handshake refused")
	}
	// Not confirmed yet: a replay of it is still "fresh" (it can only make
	// an unconfirmed session, which the relay bounds).
	if !replay.Fresh(r.Peer, r.Timestamp) {
		t.Fatal("unconfirmed timestamp recorded")
	}
	replay.Confirm(r.Peer, r.Timestamp)
	r2, _ := Consume(relay, m1)
	if replay.Fresh(r2.Peer, r2.Timestamp) {
		t.Fatal("replayed message 1 accepted after its session was confirmed")
	}
	_, m1b, _ := Initiate(agent, relay.Public(), 2, Timestamp(now.Add(time.Millisecond)), Cookie{})
	r3, _ := Consume(relay, m1b)
	if !replay.Fresh(r3.Peer, r3.Timestamp) {
		t.Fatal("newer handshake refused")
	}
	// A clock that ran ahead: the next confirmed session, older, replaces
	// the mark, so the agent is not locked out until its clock catches up.
	_, m1c, _ := Initiate(agent, relay.Public(), 3, Timestamp(now.Add(-time.Hour)), Cookie{})
	r4, _ := Consume(relay, m1c)
	replay.Confirm(r4.Peer, r4.Timestamp)
	if !replay.Fresh(r.Peer, Timestamp(now.Add(-time.Minute))) {
		t.Fatal("mark not replaced by the newest confirmed session")
	}
}

// TestInteropFlynnNoise checks the handshake against an independent Noise
// implementation in both roles: if our state machine strayed from the spec,
// the other side could not decrypt.
func TestInteropFlynnNoise(t *testing.T) {
	suite := noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)
	agent, relay := mustKey(t), mustKey(t)
	kp := func(k PrivateKey) noise.DHKey { p := k.Public(); return noise.DHKey{Private: k[:], Public: p[:]} }
	ts := Timestamp(time.Now())

	t.Run("we initiate", func(t *testing.T) {
		in, m1, _ := Initiate(agent, relay.Public(), 5, ts, Cookie{})
		resp, err := noise.NewHandshakeState(noise.Config{CipherSuite: suite, Pattern: noise.HandshakeIK,
			Prologue: prologue, StaticKeypair: kp(relay)})
		if err != nil {
			t.Fatal(err)
		}
		payload, _, _, err := resp.ReadMessage(nil, m1[protocol.HandshakeHeaderLen:noiseInitLen])
		if err != nil {
			t.Fatalf("flynn could not read our message 1: %v", err)
		}
		if !bytes.Equal(payload, append(ts[:], make([]byte, CookieLen)...)) || !bytes.Equal(resp.PeerStatic(), func() []byte { p := agent.Public(); return p[:] }()) {
			t.Fatal("flynn saw the wrong payload or static key")
		}
		body, recvCS, sendCS, err := resp.WriteMessage(nil, []byte("hi"))
		if err != nil {
			t.Fatal(err)
		}
		m2 := protocol.AppendHandshakeHeader(nil, protocol.HandshakeHeader{Type: protocol.TypeHandshakeResp, Version: protocol.Version, Sender: 6})
		m2 = binary.BigEndian.AppendUint32(m2, 5)
		m2 = append(m2, body...)
		s, p, err := in.Finish(m2)
		if err != nil || string(p) != "hi" {
			t.Fatalf("finish with flynn's message 2: %q %v", p, err)
		}
		// flynn's responder sends with its second cipher state.
		hdr := protocol.AppendDataHeader(nil, protocol.DataHeader{Receiver: 5, Counter: 3})
		pkt := sendCS.Cipher().Encrypt(append([]byte(nil), hdr...), 3, hdr, []byte("data"))
		if got, err := s.Open(nil, pkt); err != nil || string(got) != "data" {
			t.Fatalf("open flynn's transport packet: %q %v", got, err)
		}
		ours, _ := s.Seal(nil, []byte("up"))
		got, err := recvCS.Cipher().Decrypt(nil, 0, ours[:protocol.DataHeaderLen], ours[protocol.DataHeaderLen:])
		if err != nil || string(got) != "up" {
			t.Fatalf("flynn opens our packet: %q %v", got, err)
		}
	})

	t.Run("we respond", func(t *testing.T) {
		rp := relay.Public()
		ini, err := noise.NewHandshakeState(noise.Config{CipherSuite: suite, Pattern: noise.HandshakeIK, Initiator: true,
			Prologue: prologue, StaticKeypair: kp(agent), PeerStatic: rp[:]})
		if err != nil {
			t.Fatal(err)
		}
		ck := Cookie{1, 2, 3}
		body, _, _, err := ini.WriteMessage(nil, append(ts[:], ck[:]...))
		if err != nil {
			t.Fatal(err)
		}
		m1 := protocol.AppendHandshakeHeader(nil, protocol.HandshakeHeader{Type: protocol.TypeHandshakeInit, Version: protocol.Version, Sender: 8})
		m1 = appendMACs(append(m1, body...), relay.Public(), ck)
		if !NewMACChecker(relay).CheckMAC1(m1) {
			t.Fatal("mac1 over flynn's message 1 does not check")
		}
		r, err := Consume(relay, m1)
		if err != nil {
			t.Fatalf("consume flynn's message 1: %v", err)
		}
		if r.Peer != agent.Public() || r.Timestamp != ts || r.Cookie != ck {
			t.Fatal("wrong peer or timestamp from flynn's message 1")
		}
		_, m2, _ := r.Respond(9, []byte("ok"))
		p, _, _, err := ini.ReadMessage(nil, m2[protocol.HandshakeHeaderLen+4:])
		if err != nil || string(p) != "ok" {
			t.Fatalf("flynn reads our message 2: %q %v", p, err)
		}
	})
}

// TestInitiatorReused: one prepared Initiator (its static-static DH done
// once) makes initiation after initiation that the responder reads, each
// with its own ephemeral key and so its own session keys.
func TestInitiatorReused(t *testing.T) {
	agent, relay := mustKey(t), mustKey(t)
	p, err := NewInitiator(agent, relay.Public())
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	for i := range 3 {
		in, m1, err := p.Initiate(uint32(10+i), Timestamp(time.Now()), Cookie{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := Consume(relay, m1)
		if err != nil {
			t.Fatalf("initiation %d from the prepared key does not decrypt: %v", i, err)
		}
		if r.Peer != agent.Public() {
			t.Fatalf("initiation %d: responder saw another static key", i)
		}
		rs, m2, err := r.Respond(20, nil)
		if err != nil {
			t.Fatal(err)
		}
		as, _, err := in.Finish(m2)
		if err != nil {
			t.Fatalf("initiation %d: finish: %v", i, err)
		}
		pkt, _ := as.Seal(nil, []byte("x"))
		if got, err := rs.Open(nil, pkt); err != nil || string(got) != "x" {
			t.Fatalf("initiation %d: transport %q %v", i, got, err)
		}
		if i == 0 {
			first = pkt
		} else if bytes.Equal(pkt, first) {
			t.Fatal("two handshakes of one Initiator gave the same session keys")
		}
	}
}

// TestStaticDHKept: a responder that keeps an initiator's ss reads its
// next initiation with the kept value (a wrong kept value fails it, so
// the cache is what is used), and an initiator it did not keep is read
// as before.
func TestStaticDHKept(t *testing.T) {
	agent, other, relay := mustKey(t), mustKey(t), mustKey(t)
	kp := NewKeypair(relay)
	var cache StaticDH
	_, m1, _ := Initiate(agent, relay.Public(), 1, Timestamp(time.Now()), Cookie{})
	r, err := kp.ConsumeCached(m1, &cache)
	if err != nil {
		t.Fatal(err)
	}
	cache.Keep(r)
	in, m1, _ := Initiate(agent, relay.Public(), 2, Timestamp(time.Now()), Cookie{})
	r, err = kp.ConsumeCached(m1, &cache)
	if err != nil {
		t.Fatalf("with the kept ss: %v", err)
	}
	_, m2, err := r.Respond(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.Finish(m2); err != nil {
		t.Fatalf("finish after a kept ss: %v", err)
	}
	_, m1, _ = Initiate(other, relay.Public(), 4, Timestamp(time.Now()), Cookie{})
	if _, err := kp.ConsumeCached(m1, &cache); err != nil {
		t.Fatalf("a key not kept: %v", err)
	}
	cache.m[agent.Public()] = make([]byte, KeySize) // a wrong kept value
	_, m1, _ = Initiate(agent, relay.Public(), 5, Timestamp(time.Now()), Cookie{})
	if _, err := kp.ConsumeCached(m1, &cache); err == nil {
		t.Fatal("a wrong kept ss still read the initiation: the cache is not used")
	}
	cache.Forget(agent.Public())
	if _, err := kp.ConsumeCached(m1, &cache); err != nil {
		t.Fatalf("after Forget: %v", err)
	}
}
