package e2e

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
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
			inet := netsim.New(netsim.Options{})
			defer inet.Close()
			ip1, ip2 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")
			h1, _ := inet.AddHost(ip1)
			h2, _ := inet.AddHost(ip2)
			rcfg := testenv.RelayConfig(t, netip.AddrPortFrom(ip1, 7700).String())
			rcfg.AltListen = netip.AddrPortFrom(ip2, 7701).String()
			rcfg.ListenPacket = func(network, address string) (net.PacketConn, error) {
				if ap, err := netip.ParseAddrPort(address); err == nil && ap.Addr() == ip2 {
					return h2.ListenPacket(network, address)
				}
				return h1.ListenPacket(network, address)
			}
			rcfg.ListenTCP = func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }
			natCfg, _ := c.nat.Config()
			nat, err := inet.AddNAT(netip.MustParseAddr("198.51.100.10"), natCfg)
			if err != nil {
				t.Fatal(err)
			}
			host, _ := nat.Inside().AddHost(netip.MustParseAddr("192.168.1.2"))
			acfg := testenv.AgentConfig(t, netip.AddrPortFrom(ip1, 7700).String(), rcfg.PrivateKey)
			acfg.Transport = agent.TransportUDP
			acfg.ListenPacket = host.ListenPacket
			testenv.Allow(rcfg, acfg)
			testenv.StartRelay(t, rcfg)
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
