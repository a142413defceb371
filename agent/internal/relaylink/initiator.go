package relaylink

import (
	"fmt"
	"time"

	"github.com/pinhole/pinhole/protocol"
	"github.com/pinhole/pinhole/protocol/secure"
)

// cookieLife is how long the agent uses a cookie: a little under the two
// rotation periods (2 x 2 minutes) the relay accepts it for, the margin
// covering the round trip.
const cookieLife = 110 * time.Second

// maxAttempts bounds the distinct initiations remembered: an answer to
// any of them is still taken. A new one is built only when a cookie
// arrives (or the one in use expires), at most once a round trip.
const maxAttempts = 8

// initiator builds the initiations of one handshake and reads what comes
// back: cookies, which go into the next initiation, and the response,
// which may answer any recent initiation (a late answer to an earlier one
// is still good). A retry is the same initiation byte for byte, not a new
// one: the relay recognises it before any Diffie-Hellman work and sends
// its answer again (relay/resend.go), and the agent pays for no new
// ephemeral key or its two DH operations either. Under a reconnect storm
// a new initiation every second, each unrecognisable before DH, cost the
// relay a handshake per retry and the agent up to two DH per remembered
// initiation to find which one an answer belonged to.
type initiator struct {
	d     *Dialer
	t     Target
	index uint32
	flags byte // in every initiation's header (protocol.FlagParkable)

	sent     []attempt
	m1       []byte        // the initiation in use, sent again until answered
	m1Cookie secure.Cookie // the cookie m1's mac2 is made with
	m1Inner  secure.Cookie // the cookie encrypted inside m1
	cookie   secure.Cookie
	cookieAt time.Time // monotonic: when the cookie arrived
	reason   protocol.CookieReason
}

type attempt struct {
	in *secure.Initiation
	at time.Time // monotonic time of its last sending, for the round trip
}

// established is a finished handshake and what it taught about the clocks.
type established struct {
	*secure.Session
	clockOffset time.Duration // relay clock minus ours
}

// next returns the initiation to send now: the one sent before, byte for
// byte, unless the cookie to carry changed since (one arrived, or the one
// carried expired). A cookie sent because the relay was under load only
// asks the agent to prove its address: the same initiation with its mac2
// made with the cookie does that (secure.WithMAC2), for a MAC instead of
// two scalar multiplications, which on a router's CPU is most of a
// reconnect. A cookie for any other reason (a stale timestamp, too many
// pending sessions) must be echoed inside: a new initiation carrying it.
func (h *initiator) next() ([]byte, error) {
	ck := h.cookie
	if time.Since(h.cookieAt) > cookieLife {
		ck = secure.Cookie{}
	}
	echo := !ck.IsZero() && h.reason != protocol.CookieLoad // the relay wants ck inside
	if h.m1 != nil && ck != h.m1Cookie && !ck.IsZero() && !echo && h.m1Inner.IsZero() {
		h.m1, h.m1Cookie = secure.WithMAC2(h.m1, ck), ck
	}
	if h.m1 != nil && ck == h.m1Cookie && (!echo || h.m1Inner == ck) {
		h.sent[len(h.sent)-1].at = time.Now()
		return h.m1, nil
	}
	p, err := h.d.Prepared.get(h.d.Key, h.t.PublicKey)
	if err != nil {
		return nil, err
	}
	in, m1, err := p.InitiateFlags(h.index, secure.Timestamp(h.d.now()), ck, h.flags)
	if err != nil {
		return nil, err
	}
	if len(h.sent) == maxAttempts {
		h.sent = h.sent[1:]
	}
	h.sent = append(h.sent, attempt{in: in, at: time.Now()})
	h.m1, h.m1Cookie, h.m1Inner = m1, ck, ck
	return m1, nil
}

// takeCookie opens a CookieReply answering one of our initiations and
// reports whether it asks for an initiation at once: a new cookie, or one
// the relay wants echoed inside that the initiation in use lacks.
func (h *initiator) takeCookie(b []byte) bool {
	hdr, err := protocol.ParseCookieHeader(b)
	if err != nil || hdr.Receiver != h.index {
		return false
	}
	for i := len(h.sent) - 1; i >= 0; i-- {
		ck, err := secure.OpenCookieReply(b, h.t.PublicKey, h.sent[i].in.MAC1())
		if err != nil {
			continue
		}
		h.reason = hdr.Reason
		h.d.Log.Debug("relay answered with a cookie", "relay", h.t.Address, "reason", hdr.Reason)
		isNew := ck != h.cookie || hdr.Reason != protocol.CookieLoad && ck != h.m1Inner
		h.cookie, h.cookieAt = ck, time.Now()
		return isNew
	}
	return false
}

// finish completes the handshake with whichever initiation msg answers.
func (h *initiator) finish(msg []byte) (*established, protocol.HandshakePayload, error) {
	err := error(ErrNoAnswer)
	for i := len(h.sent) - 1; i >= 0; i-- {
		sess, payload, ferr := h.sent[i].in.Finish(msg)
		if ferr != nil {
			err = ferr
			continue
		}
		p, _ := protocol.ParseHandshakePayload(payload)
		e := &established{Session: sess}
		if p.TimeNanos != 0 {
			// The relay read its clock about half a round trip ago.
			rtt := time.Since(h.sent[i].at)
			e.clockOffset = time.Unix(0, p.TimeNanos).Add(rtt / 2).Sub(h.d.now())
		}
		return e, p, nil
	}
	return nil, protocol.HandshakePayload{}, err
}

// noSession describes a handshake that got no session within wait, by
// what did come back.
func (h *initiator) noSession(transport string, wait time.Duration) error {
	if h.reason != 0 {
		return fmt.Errorf("relay %s over %s: answered with a cookie (%v) but no session within %v", h.t.Address, transport, h.reason, wait)
	}
	return fmt.Errorf("relay %s over %s: %w within %v: nothing came back (the relay may be down or unreachable, %s may be blocked, "+
		"or the relay public_key in the agent config is not this relay's: a relay drops handshakes made for another key unanswered)",
		h.t.Address, transport, ErrNoAnswer, wait, transport)
}
