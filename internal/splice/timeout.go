package splice

import "net"

// NetTimeout reports whether the first net.Error in err's tree timed out:
// what `var ne net.Error; errors.As(err, &ne) && ne.Timeout()` says, with
// the same depth-first walk (Unwrap() error, Unwrap() []error and As
// methods). It exists for size: errors.As is reflection-based, and these
// timeout checks were its only users, about 15 KB of the mipsle binary.
func NetTimeout(err error) bool {
	ne, ok := firstNetError(err)
	return ok && ne.Timeout()
}

func firstNetError(err error) (net.Error, bool) {
	for err != nil {
		if ne, ok := err.(net.Error); ok {
			return ne, true
		}
		if x, ok := err.(interface{ As(any) bool }); ok {
			var ne net.Error
			if x.As(&ne) {
				return ne, true
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if e == nil {
					continue
				}
				if ne, ok := firstNetError(e); ok {
					return ne, true
				}
			}
			return nil, false
		default:
			return nil, false
		}
	}
	return nil, false
}
