// Package epollset is an epoll set of the process's own, for waiting on
// many descriptors from one goroutine: the relay's acceptor watches every
// exposed port's listener with one, splice's readiness set every parked
// connection's socket. The set's own descriptor is non-blocking and
// waited on by Go's poller, so no thread blocks in epoll_wait, and a
// descriptor can sit in the set and in Go's poller at the same time (Go
// does not wait on it there while the set does). Linux only.
package epollset

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Set is one epoll set. Each watched descriptor carries a token of the
// caller's choosing, returned with its events.
type Set struct {
	f      *os.File
	rc     syscall.RawConn
	events []unix.EpollEvent // Wait's, which has one caller at a time
}

// New makes a set; name is for the descriptor's os.File.
func New(name string) (*Set, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Set{f: f, rc: rc}, nil
}

// Close closes the set; a Wait in progress returns an error.
func (s *Set) Close() error { return s.f.Close() }

// Ctl adds (EPOLL_CTL_ADD), changes (EPOLL_CTL_MOD) or removes
// (EPOLL_CTL_DEL) c's descriptor with the given events and token. c's
// descriptor cannot be closed meanwhile (RawConn.Control holds it).
func (s *Set) Ctl(op int, c syscall.RawConn, events uint32, token uint64) error {
	// The token fills epoll_data's 64 bits, which x/sys names Fd and Pad.
	ev := unix.EpollEvent{Events: events, Fd: int32(token), Pad: int32(token >> 32)}
	var err, serr error
	cerr := c.Control(func(fd uintptr) {
		serr = s.rc.Control(func(epfd uintptr) {
			err = unix.EpollCtl(int(epfd), op, int(fd), &ev)
		})
	})
	if err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return errors.Join(cerr, serr)
}

// Wait waits until at least one watched descriptor is ready and returns
// the tokens of up to len(tokens) of them; it fails once the set is
// closed. One goroutine at a time may wait.
func (s *Set) Wait(tokens []uint64) (int, error) {
	if len(s.events) != len(tokens) {
		s.events = make([]unix.EpollEvent, len(tokens))
	}
	events := s.events
	var n int
	var werr error
	err := s.rc.Read(func(epfd uintptr) bool {
		for {
			if n, werr = unix.EpollWait(int(epfd), events, 0); werr != unix.EINTR {
				return werr != nil || n > 0 // false: nothing ready, wait for the set to become readable
			}
		}
	})
	if err = errors.Join(err, werr); err != nil {
		return 0, err
	}
	for i := range n {
		tokens[i] = uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
	}
	return n, nil
}
