package protocol

// MaxNameLen is the longest agent or exposure name: a DNS label's limit, so
// a name can also serve as one.
const MaxNameLen = 63

// ValidName reports whether s is a usable agent or exposure name: 1 to
// MaxNameLen ASCII letters, digits, '.', '_' or '-'. The config refuses
// other names before the agent starts and the relay refuses them in a
// Register, so both ends apply this one rule. (A loop: this package stays
// free of regexp, and there is nothing to compile at start.)
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
