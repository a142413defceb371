package splice

import (
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pinhole/pinhole/internal/epollset"
	"golang.org/x/sys/unix"
)

// readySet waits for many idle sockets with one goroutine (park.go): an
// epoll set of its own (internal/epollset), where each socket is watched
// once (EPOLLONESHOT) and re-armed when its copy parks again. A socket
// stays in Go's own poller too; it is simply not waited on there while
// parked.
type readySet struct {
	set *epollset.Set

	mu      sync.Mutex // guards next, waiting
	next    uint64
	waiting map[uint64]func()
}

var theReadySet = sync.OnceValue(func() *readySet {
	set, err := epollset.New("splice-ready")
	if err != nil {
		return nil // copies wait in Go's poller as usual
	}
	s := &readySet{set: set, waiting: map[uint64]func(){}}
	go s.run()
	return s
})

// arm calls fn once, from the set's goroutine, when c is readable, has
// hung up or failed. token names the watch: 0 on the first call, which
// assigns it; fn must not block. A socket closed while armed is dropped
// from the epoll set by the kernel without an event: whoever closes it
// must wake the parked copy (join.resumeParked) and forget the token.
func (s *readySet) arm(c syscall.RawConn, token *atomic.Uint64, fn func()) error {
	// A socket joins the set on its copy's first park (the token is
	// assigned then) and stays until it is closed; later parks re-arm it.
	op := unix.EPOLL_CTL_MOD
	s.mu.Lock()
	t := token.Load()
	if t == 0 {
		s.next++
		t = s.next
		token.Store(t)
		op = unix.EPOLL_CTL_ADD
	}
	s.waiting[t] = fn
	s.mu.Unlock()
	err := s.set.Ctl(op, c, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT, t)
	if err != nil {
		s.forget(t)
	}
	return err
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
	tokens := make([]uint64, 64)
	for {
		n, err := s.set.Wait(tokens)
		if err != nil {
			return // the set was closed: nothing to watch any more
		}
		for _, t := range tokens[:n] {
			s.mu.Lock()
			fn := s.waiting[t]
			delete(s.waiting, t)
			s.mu.Unlock()
			if fn != nil {
				fn()
			}
		}
	}
}
