package protocol

import "fmt"

// NoticeCode says why the relay is about to close a link.
type NoticeCode byte

const (
	NoticeReplaced    NoticeCode = 1 // a newer session with the same key took over
	NoticeKeyRemoved  NoticeCode = 2 // the agent's key left the relay's config
	NoticeShutdown    NoticeCode = 3 // the relay is stopping
	NoticeBadMessage  NoticeCode = 4 // the agent sent something the relay could not accept
	NoticeIdleTimeout NoticeCode = 5 // no heartbeat within agent_timeout
	// NoticeDuplicateKey: sessions with this key keep replacing each other
	// from two addresses, so two agents appear to share one key. The agent
	// should say so and stay away for a while instead of reconnecting at
	// once, which would only replace the other agent again.
	NoticeDuplicateKey NoticeCode = 6
)

func (c NoticeCode) String() string {
	switch c {
	case NoticeReplaced:
		return "replaced by a newer session"
	case NoticeKeyRemoved:
		return "agent key removed from relay config"
	case NoticeShutdown:
		return "relay shutting down"
	case NoticeBadMessage:
		return "bad message"
	case NoticeIdleTimeout:
		return "idle timeout"
	case NoticeDuplicateKey:
		return "another agent uses this key"
	}
	return fmt.Sprintf("notice(%d)", byte(c))
}

// Notice tells the agent why its link ends, so its log says more than
// "connection reset".
type Notice struct {
	Code NoticeCode
	Text string
}

func (Notice) Type() MsgType { return MsgNotice }

func (m Notice) Append(b []byte) []byte {
	b = append(b, byte(m.Code))
	return appendString(b, m.Text)
}

func parseNotice(r *reader) Notice { return Notice{Code: NoticeCode(r.u8()), Text: r.str()} }
