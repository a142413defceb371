package protocol

// Hello opens the control stream. The relay already knows the agent by its
// key; Hello adds what helps operators: the agent's configured name and its
// software version.
type Hello struct {
	Name     string
	Software string
}

func (Hello) Type() MsgType { return MsgHello }

func (m Hello) Append(b []byte) []byte {
	b = appendString(b, m.Name)
	return appendString(b, m.Software)
}

func parseHello(r *reader) Hello {
	return Hello{Name: r.str(), Software: r.str()}
}
