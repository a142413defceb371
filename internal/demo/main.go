// Command demo is `make demo`: it runs the real pinhole binary as a relay
// and an agent on loopback, publishes a small HTTP service through the
// tunnel, fetches a file through the relay, compares hashes and prints
// what happened at each step. Everything lives in a temporary directory and
// is stopped and removed at the end, also on failure.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/pinhole", "pinhole binary to run")
	keep := flag.Bool("keep", false, "keep the temporary directory (configs, keys, logs)")
	flag.Parse()
	if err := run(*bin, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(bin string, keep bool) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pinhole-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	out, _ := exec.Command(bin, "version").Output()
	step("binary: %s", strings.TrimSpace(string(out)))

	// 1. Keys, exactly as the README tells a user to make them.
	relayKey, relayPub, err := keypair(bin, dir, "relay")
	if err != nil {
		return err
	}
	agentKey, agentPub, err := keypair(bin, dir, "agent")
	if err != nil {
		return err
	}
	step("made throw-away keys: relay %s, agent %s", relayPub, agentPub)

	// 2. A local service on the "router": a 4 MiB file and a greeting.
	blob := make([]byte, 4<<20)
	rand.Read(blob)
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello from the router's web server") })
	mux.HandleFunc("/blob", func(w http.ResponseWriter, r *http.Request) { w.Write(blob) })
	go http.Serve(svc, mux)
	defer svc.Close()
	step("demo HTTP service on %s (the router's local service)", svc.Addr())

	relayPort, publicPort := freePort(), freePort()
	relayYAML := fmt.Sprintf(`# written by make demo
listen: 127.0.0.1:%d
private_key_file: %s
bind: 127.0.0.1
admin: 127.0.0.1:%d
agents:
  - name: demo-router
    public_key: %s
    allow_ports: ["%d/tcp"]
`, relayPort, relayKey, freePort(), agentPub, publicPort)
	agentAdmin := fmt.Sprintf("127.0.0.1:%d", freePort())
	agentYAML := fmt.Sprintf(`# written by make demo
name: demo-router
private_key_file: %s
relays:
  - address: 127.0.0.1:%d
    public_key: %s
admin: %s
port_mapping: off
expose:
  - name: web
    protocol: tcp
    local: %s
    remote_port: %d
`, agentKey, relayPort, relayPub, agentAdmin, svc.Addr(), publicPort)
	relayCfg := filepath.Join(dir, "relay.yaml")
	agentCfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(relayCfg, []byte(relayYAML), 0o600)
	os.WriteFile(agentCfg, []byte(agentYAML), 0o600)
	for _, c := range []string{relayCfg, agentCfg} {
		out, err := exec.Command(bin, "check", "-c", c).CombinedOutput()
		if err != nil {
			return fmt.Errorf("pinhole check %s: %v\n%s", c, err, out)
		}
		step("pinhole check: %s", strings.TrimSpace(string(out)))
	}

	// 3. Relay and agent as real processes.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	relay, relayLog, err := start(ctx, bin, dir, "relay", relayCfg)
	if err != nil {
		return err
	}
	defer stop(relay, "relay")
	agent, agentLog, err := start(ctx, bin, dir, "agent", agentCfg)
	if err != nil {
		return err
	}
	defer stop(agent, "agent")
	step("started relay (pid %d, UDP+TCP 127.0.0.1:%d) and agent (pid %d)", relay.Process.Pid, relayPort, agent.Process.Pid)

	public := fmt.Sprintf("http://127.0.0.1:%d", publicPort)
	t0 := time.Now()
	if err := waitHTTP(public+"/", 20*time.Second); err != nil {
		return fmt.Errorf("tunnel did not come up: %v\n--- relay log\n%s--- agent log\n%s", err, readFile(relayLog), readFile(agentLog))
	}
	step("tunnel up after %v: %s now reaches the router's service", time.Since(t0).Round(time.Millisecond), public)

	// 4. Fetch through the tunnel and compare hashes.
	resp, err := http.Get(public + "/")
	if err != nil {
		return err
	}
	greeting, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	step("GET %s/ -> %q", public, strings.TrimSpace(string(greeting)))
	t1 := time.Now()
	resp, err = http.Get(public + "/blob")
	if err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	elapsed := time.Since(t1)
	want, have := sha256.Sum256(blob), sha256.Sum256(got)
	step("GET %s/blob -> %d bytes in %v (%.0f Mbit/s)", public, len(got), elapsed.Round(time.Millisecond), float64(len(got))*8/elapsed.Seconds()/1e6)
	fmt.Printf("    sha256 at the service:      %x\n    sha256 through the tunnel:  %x\n", want, have)
	if !bytes.Equal(want[:], have[:]) {
		return fmt.Errorf("hash mismatch: the tunnel corrupted the transfer")
	}
	step("hashes match")

	// 5. What the agent says about itself.
	if out, err := exec.Command(bin, "status", "--admin", agentAdmin).CombinedOutput(); err == nil {
		step("pinhole status:\n%s", indent(string(out)))
	} else {
		return fmt.Errorf("pinhole status: %v\n%s", err, out)
	}

	// 6. Stop both with SIGTERM and show the interesting log lines.
	stop(agent, "agent")
	stop(relay, "relay")
	step("relay log (info):\n%s", indent(filterLog(readFile(relayLog))))
	step("agent log (info):\n%s", indent(filterLog(readFile(agentLog))))
	fmt.Println("\ndemo OK: bytes flowed through the encrypted tunnel and arrived intact.")
	return nil
}

func keypair(bin, dir, name string) (keyFile, pub string, err error) {
	key, err := exec.Command(bin, "keygen").Output()
	if err != nil {
		return "", "", fmt.Errorf("pinhole keygen: %w", err)
	}
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		return "", "", err
	}
	cmd := exec.Command(bin, "pubkey")
	cmd.Stdin = bytes.NewReader(key)
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("pinhole pubkey: %w", err)
	}
	return keyFile, strings.TrimSpace(string(out)), nil
}

func start(ctx context.Context, bin, dir, role, cfg string) (*exec.Cmd, string, error) {
	logPath := filepath.Join(dir, role+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.CommandContext(ctx, bin, role, "-c", cfg)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", role, err)
	}
	return cmd, logPath, nil
}

// stop sends SIGTERM and waits; a process that does not stop in 10 s is
// killed and reported.
func stop(cmd *exec.Cmd, role string) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			fmt.Printf("    %s exited: %v\n", role, err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		fmt.Printf("    %s did not stop on SIGTERM within 10s; killed\n", role)
	}
}

func waitHTTP(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func filterLog(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "level=INFO") || strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
