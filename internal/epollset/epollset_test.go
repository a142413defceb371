//go:build linux

package epollset

import (
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSetReportsTokensAndErrors: a socket that becomes readable comes
// back with its token (all 64 bits), a one-shot watch fires once until
// re-armed, and epoll_ctl's own refusal reaches the caller (it once did
// not: the wrapping call's result replaced it).
func TestSetReportsTokensAndErrors(t *testing.T) {
	s, err := New("test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc, _ := a.(*net.UDPConn).SyscallConn()
	const token = 0xfeedface_00c0ffee
	if err := s.Ctl(unix.EPOLL_CTL_MOD, rc, unix.EPOLLIN, token); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("MOD of a socket not in the set: %v, want ENOENT", err)
	}
	if err := s.Ctl(unix.EPOLL_CTL_ADD, rc, unix.EPOLLIN|unix.EPOLLONESHOT, token); err != nil {
		t.Fatal(err)
	}
	send := func() {
		c, _ := net.Dial("udp", a.LocalAddr().String())
		c.Write([]byte("x"))
		c.Close()
	}
	got := make(chan uint64, 4)
	go func() {
		tokens := make([]uint64, 8)
		for {
			n, err := s.Wait(tokens)
			if err != nil {
				close(got)
				return
			}
			for _, tk := range tokens[:n] {
				got <- tk
			}
		}
	}()
	send()
	select {
	case tk := <-got:
		if tk != token {
			t.Fatalf("token %#x, want %#x", tk, uint64(token))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no event for a readable socket")
	}
	send() // still readable, but the one-shot watch is spent
	select {
	case tk := <-got:
		t.Fatalf("a spent one-shot watch fired again (%#x)", tk)
	case <-time.After(100 * time.Millisecond):
	}
	if err := s.Ctl(unix.EPOLL_CTL_MOD, rc, unix.EPOLLIN|unix.EPOLLONESHOT, token); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("re-armed watch of a readable socket did not fire")
	}
	s.Close()
	if _, ok := <-got; ok {
		t.Fatal("Wait went on after Close")
	}
}
