package relay

import (
	"testing"

	"github.com/pinhole/pinhole/protocol"
)

func TestSizeClasses(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 64}, {1, 64}, {64, 64}, {65, 128}, {102, 128}, {1352, 2048}, {2 + protocol.MaxUDPPayload, 65536},
	} {
		if got := classSize(c.n); got != c.want {
			t.Errorf("classSize(%d) = %d, want %d", c.n, got, c.want)
		}
		b := getBuf(c.n)
		if len(*b) != c.n || cap(*b) != c.want {
			t.Errorf("getBuf(%d): len %d cap %d, want len %d cap %d", c.n, len(*b), cap(*b), c.n, c.want)
		}
		putBuf(b)
	}
}
