package netcheck

import (
	"testing"

	"github.com/pinhole/pinhole/protocol"
)

// TestClassifyPorts: the NAT's own step is found when other traffic took
// ports in between (the lab saw a sequential NAT called random while the
// agent punched towards a peer), and random allocation stays random.
func TestClassifyPorts(t *testing.T) {
	for _, c := range []struct {
		ports []int
		want  protocol.PortAllocation
		delta int
	}{
		{[]int{30000, 30001, 30002, 30003, 30004}, protocol.PortsSequential, 1},
		{[]int{30000, 30002, 30004, 30006, 30008}, protocol.PortsSequential, 2},
		{[]int{30010, 30009, 30008, 30007, 30006}, protocol.PortsSequential, -1},
		{[]int{30000, 30003, 30004, 30005, 30007}, protocol.PortsSequential, 1}, // punching took 30001, 30002, 30006
		{[]int{30000, 30001, 30002}, protocol.PortsSequential, 1},
		{[]int{30000, 30004, 30009, 30010, 30016}, protocol.PortsRandom, 0}, // no step repeats
		{[]int{30000, 30001, 30000, 30001, 30002}, protocol.PortsRandom, 0}, // back and forth
		{[]int{30000, 30001, 30001, 30002, 30003}, protocol.PortsRandom, 0}, // a port twice
		{[]int{30000, 41234, 2345, 51000, 33000}, protocol.PortsRandom, 0},
		{[]int{30000, 30001, 30040, 30041, 30042}, protocol.PortsRandom, 0}, // one step too large
		{[]int{30000, 30001}, protocol.PortsUnknown, 0},
	} {
		got, delta := classifyPorts(c.ports)
		if got != c.want || delta != c.delta {
			t.Errorf("%v: %v delta %d, want %v delta %d", c.ports, got, delta, c.want, c.delta)
		}
	}
}
