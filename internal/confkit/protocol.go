package confkit

import "fmt"

// Protocol is the transport of an exposed port. Its values equal
// protocol.Proto's on the wire (tcp 1, udp 2), so protocol.Proto(p)
// converts; the zero value means "not given" (both, in an allow-list).
type Protocol uint8

const (
	TCP Protocol = 1
	UDP Protocol = 2
)

var protocolNames = []string{TCP: "tcp", UDP: "udp"}

// String returns "tcp" or "udp" ("tcp+udp" for the zero value).
func (p Protocol) String() string {
	if p == 0 {
		return "tcp+udp"
	}
	return enumString(protocolNames, p)
}

// MarshalText returns the config spelling.
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads "tcp" or "udp".
func (p *Protocol) UnmarshalText(b []byte) error { return enumParse(protocolNames, p, b) }

// ParseProtocol reads "tcp" or "udp".
func ParseProtocol(s string) (Protocol, error) {
	var p Protocol
	err := p.UnmarshalText([]byte(s))
	return p, err
}

// enumString names v by its index in names, or by number when unknown.
func enumString[T ~uint8](names []string, v T) string {
	if int(v) < len(names) && names[v] != "" {
		return names[v]
	}
	return fmt.Sprintf("%d", uint8(v))
}

// enumParse sets *v to the index of b in names (see OneOf).
func enumParse[T ~uint8](names []string, v *T, b []byte) error {
	i, err := OneOf(string(b), names...)
	if err != nil {
		return err
	}
	*v = T(i)
	return nil
}

// EnumString and EnumParse let enums outside this package (the agent's
// transport, for one) share the spelling and error rules above: names is
// indexed by value, "" for values with no spelling.
func EnumString[T ~uint8](names []string, v T) string { return enumString(names, v) }

// EnumParse: see EnumString.
func EnumParse[T ~uint8](names []string, v *T, b []byte) error { return enumParse(names, v, b) }
