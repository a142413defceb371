package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pinhole/pinhole/internal/admin"
	"github.com/pinhole/pinhole/internal/testenv"
	"github.com/pinhole/pinhole/protocol/secure"
)

// TestRelayMemoryLimit: the relay binary applies memory_limit from
// relay.yaml (the Go soft limit its status reports), and GOMEMLIMIT wins
// over it.
func TestRelayMemoryLimit(t *testing.T) {
	bin := buildPinhole(t)
	rk, _ := secure.GeneratePrivateKey()
	ak, _ := secure.GeneratePrivateKey()
	for _, c := range []struct {
		env  string
		want uint64
	}{{"", 48 << 20}, {"GOMEMLIMIT=100MiB", 100 << 20}} {
		t.Run(fmt.Sprintf("env=%q", c.env), func(t *testing.T) {
			dir := t.TempDir()
			adminAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			os.WriteFile(filepath.Join(dir, "relay.yaml"), fmt.Appendf(nil,
				"listen: 127.0.0.1:%d\nprivate_key: %s\nadmin: %s\nmemory_limit: 48MiB\nagents:\n  - name: r1\n    public_key: %s\n",
				testenv.FreePort(t), rk, adminAddr, ak.Public()), 0o600)
			cmd := exec.Command(bin, "relay", "-c", filepath.Join(dir, "relay.yaml"))
			cmd.Env = os.Environ()
			if c.env != "" {
				cmd.Env = append(cmd.Env, c.env)
			}
			if testing.Verbose() {
				cmd.Stderr = os.Stderr
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			var doc struct {
				Process admin.Process `json:"process"`
			}
			testenv.WaitFor(t, 10*time.Second, "relay status", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				b, err := admin.Fetch(ctx, adminAddr)
				return err == nil && json.Unmarshal(b, &doc) == nil
			})
			t.Logf("relay status: memory_limit %d, heap_inuse %d, rss %d", doc.Process.MemoryLimit, doc.Process.HeapInuse, doc.Process.RSS)
			if doc.Process.MemoryLimit != c.want {
				t.Errorf("relay soft memory limit %d, want %d", doc.Process.MemoryLimit, c.want)
			}
		})
	}
}
