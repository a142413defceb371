package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pinhole/pinhole/agent"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol/secure"
)

// TestLongHeartbeatRelayKill: an agent with a 10-minute heartbeat (tuned to
// a long NAT lifetime) is back within seconds after its relay is killed
// with SIGKILL and started again, because the relay remembers its agents
// (state_file) and invites them to re-handshake. Without the state file
// the agent would sit on a dead link until its next heartbeat. The kill
// comes half a second after the agent connected.
func TestLongHeartbeatRelayKill(t *testing.T) {
	for _, withState := range []bool{true, false} {
		t.Run(fmt.Sprintf("state_file=%v", withState), func(t *testing.T) {
			dir := t.TempDir()
			bin := buildPinhole(t)
			rk, _ := secure.GeneratePrivateKey()
			acfg := testenv.AgentConfig(t, "", rk)
			acfg.Transport = agent.TransportUDP
			acfg.Heartbeat = 10 * time.Minute
			port := testenv.FreePort(t)
			state := ""
			if withState {
				state = "state_file: relay.state\n"
			}
			os.WriteFile(filepath.Join(dir, "relay.yaml"), fmt.Appendf(nil, "listen: 127.0.0.1:%d\n%sprivate_key: %s\nadmin: off\nagents:\n  - name: r1\n    public_key: %s\n",
				port, state, rk, acfg.PrivateKey.Public()), 0o600)
			start := func() *exec.Cmd {
				cmd := exec.Command(bin, "relay", "-c", filepath.Join(dir, "relay.yaml"))
				if testing.Verbose() {
					cmd.Stderr = os.Stderr
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
				return cmd
			}
			relay := start()
			acfg.Relays[0].Address = fmt.Sprintf("127.0.0.1:%d", port)
			a, _, _ := testenv.StartAgent(t, acfg)
			testenv.WaitFor(t, 10*time.Second, "agent connected", func() bool { return a.Status().Connected })
			first := *a.Status().Since
			// The relay writes its state within stateSettle (100 ms) of a
			// session coming or going: killed half a second after the
			// agent connected, it must still invite it back (a crash loop
			// gives it no more; with only the 2 s periodic write it forgot).
			time.Sleep(500 * time.Millisecond)

			relay.Process.Signal(syscall.SIGKILL)
			relay.Wait()
			start()
			restarted := time.Now()
			back := func() bool { st := a.Status(); return st.Connected && st.Since != nil && st.Since.After(first) }
			if !withState {
				time.Sleep(5 * time.Second)
				if back() {
					t.Fatal("back without the state file: this control case no longer shows what the state file is for")
				}
				return
			}
			testenv.WaitFor(t, 5*time.Second, "agent back with the restarted relay", back)
			t.Logf("agent with a 10 min heartbeat back %v after the relay's restart", time.Since(restarted).Round(time.Millisecond))
		})
	}
}
