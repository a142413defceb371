package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Run runs a command in host's namespace and returns its combined output.
// When ctx ends the command's process group is killed.
func (l *Lab) Run(ctx context.Context, host string, args ...string) (string, error) {
	out, err := l.command(ctx, host, args).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", host, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// command prepares args to run in host's namespace, in a process group of
// its own that is killed when ctx ends or when this process dies.
func (l *Lab) command(ctx context.Context, host string, args []string) *exec.Cmd {
	// ip netns exec enters the namespace and execs the command, so the
	// process (and its pid) is the command itself.
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(host)}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Wait returns at most this long after the process exits, even if a
	// grandchild still holds its output open.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Proc is a background process in a lab host.
type Proc struct {
	Host string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // set before done is closed
}

// Start runs a command in the background in host's namespace. It runs
// until it exits, Stop is called, ctx ends (then its process group is
// killed), or the lab is closed: every lab process has a bounded life.
func (l *Lab) Start(ctx context.Context, host string, args ...string) (*Proc, error) {
	cmd := l.command(ctx, host, args)
	buf := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start in %s: %w", host, err)
	}
	p := &Proc{Host: host, cmd: cmd, out: buf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) { syscall.Kill(-p.cmd.Process.Pid, sig) }

// Stop sends SIGTERM, waits up to 5 s, then kills.
func (p *Proc) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.Signal(syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// CPU returns the user and system CPU time the process has used so far
// (/proc/PID/stat utime + stime; ip netns exec execs the command, so the
// pid is the command's own).
func (p *Proc) CPU() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", p.cmd.Process.Pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", p.cmd.Process.Pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture the lab runs on.
const clockTicks = 100

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
