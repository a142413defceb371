package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/netsim"
	"github.com/pinhole/pinhole/internal/testenv"
)

// TestAgentDiscoversItsNAT: an agent behind a simulated NAT measures it by
// itself once its link is up (a sibling of the relay link, on the agent's
// own socket) and shows the facts in its status.
func TestAgentDiscoversItsNAT(t *testing.T) {
	for _, c := range []struct {
		nat  netsim.NATType
		want string
	}{
		{netsim.PortRestricted, "port-restricted cone"},
		{netsim.Symmetric, "symmetric"},
		{netsim.FullCone, "full cone"},
	} {
		t.Run(c.nat.String(), func(t *testing.T) {
			w := newPeerWorld(t)
			acfg := w.agentOn(w.site(c.nat), "192.168.1.2", "router1")
			w.start()
			a, alog, _ := testenv.StartAgent(t, acfg)
			testenv.WaitFor(t, 10*time.Second, "NAT facts in status", func() bool { return a.Status().NAT != nil })
			st := a.Status().NAT
			t.Logf("%s: %+v", c.nat, *st)
			if st.Type != c.want || st.Public != a.Status().Observed {
				t.Fatalf("status NAT %+v, want type %q at the public address %s", *st, c.want, a.Status().Observed)
			}
			if !strings.Contains(alog.String(), "NAT discovered") {
				t.Fatal("the agent did not log what it discovered")
			}
		})
	}
}
