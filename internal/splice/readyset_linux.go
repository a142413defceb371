package splice

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// readySet waits for many idle sockets with one goroutine (park.go): an
// epoll set of its own, where each socket is watched once (EPOLLONESHOT)
// and re-armed when its copy parks again. The set's descriptor is itself
// non-blocking and waited on by Go's poller, so no thread blocks in
// epoll_wait. A socket stays in Go's own poller too; it is simply not
// waited on there while parked.
type readySet struct {
	ep *os.File
	rc syscall.RawConn

	mu      sync.Mutex // guards next, waiting
	next    uint64
	waiting map[uint64]func()
}

var (
	readyOnce sync.Once
	readyErr  error
	ready     *readySet
)

// theReadySet returns the process's set, started on first use, or nil
// if the kernel refused one (then copies wait in Go's poller as usual).
func theReadySet() *readySet {
	readyOnce.Do(func() {
		ready, readyErr = newReadySet()
		if readyErr == nil {
			go ready.run()
		}
	})
	if readyErr != nil {
		return nil
	}
	return ready
}

func newReadySet() (*readySet, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	ep := os.NewFile(uintptr(fd), "splice-epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, err
	}
	return &readySet{ep: ep, rc: rc, waiting: map[uint64]func(){}}, nil
}

// arm calls fn once, from the set's goroutine, when c is readable, has
// hung up or failed. *token names the watch: 0 on the first call, which
// assigns it; fn must not block. A socket closed while armed is dropped
// from the epoll set by the kernel without an event: whoever closes it
// must wake the parked copy (join.resumeParked) and forget the token.
func (s *readySet) arm(c syscall.RawConn, token *atomic.Uint64, fn func()) error {
	s.mu.Lock()
	t := token.Load()
	if t == 0 {
		s.next++
		t = s.next
		token.Store(t)
	}
	s.waiting[t] = fn
	s.mu.Unlock()
	// The token fills epoll_data's 64 bits, which x/sys names Fd and Pad.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd: int32(t), Pad: int32(t >> 32)}
	var err error
	cerr := c.Control(func(fd uintptr) {
		err = s.rc.Control(func(epfd uintptr) {
			err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_MOD, int(fd), &ev)
			if err == unix.ENOENT {
				err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, int(fd), &ev)
			}
		})
	})
	if err = errors.Join(cerr, err); err != nil {
		s.forget(t)
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// forget drops token's watch, if it has not fired.
func (s *readySet) forget(token uint64) {
	if token == 0 {
		return
	}
	s.mu.Lock()
	delete(s.waiting, token)
	s.mu.Unlock()
}

// run delivers events for as long as the process lives.
func (s *readySet) run() {
	events := make([]unix.EpollEvent, 64)
	for {
		err := s.rc.Read(func(epfd uintptr) bool {
			for {
				n, err := unix.EpollWait(int(epfd), events, 0)
				if err == unix.EINTR {
					continue
				}
				if err != nil || n <= 0 {
					return false // wait for the set to become readable
				}
				s.deliver(events[:n])
				if n < len(events) {
					return false
				}
			}
		})
		if err != nil { // the set was closed: nothing to watch any more
			return
		}
	}
}

func (s *readySet) deliver(events []unix.EpollEvent) {
	for i := range events {
		token := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
		s.mu.Lock()
		fn := s.waiting[token]
		delete(s.waiting, token)
		s.mu.Unlock()
		if fn != nil {
			fn()
		}
	}
}
