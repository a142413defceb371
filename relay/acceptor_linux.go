package relay

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/pinhole/pinhole/internal/epollset"
	"golang.org/x/sys/unix"
)

// acceptor: see acceptor.go.
type acceptor struct {
	acceptorBase
	set *epollset.Set // the listeners, by their entries' ids
}

func newAcceptor() (*acceptor, error) {
	set, err := epollset.New("acceptor")
	if err != nil {
		return nil, err
	}
	return &acceptor{set: set}, nil
}

// add watches ln; remove stops it (call it before closing ln).
func (a *acceptor) add(ln *net.TCPListener, handle acceptFunc) (remove func(), err error) {
	lrc, err := ln.SyscallConn()
	if err != nil {
		return nil, err
	}
	e := &acceptEntry{raw: lrc, handle: handle}
	a.mu.Lock()
	id := a.registerLocked(e)
	a.mu.Unlock()
	ctl := func(op int) error { return a.set.Ctl(op, lrc, unix.EPOLLIN, uint64(uint32(id))) }
	forget := func() {
		a.mu.Lock()
		delete(a.entries, id)
		a.mu.Unlock()
	}
	if err := ctl(unix.EPOLL_CTL_ADD); err != nil {
		forget()
		return nil, err
	}
	return func() {
		forget()
		ctl(unix.EPOLL_CTL_DEL) // fails only when ln or the set is closed already, which removes it too
	}, nil
}

// run serves the listeners until ctx ends.
func (a *acceptor) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { a.set.Close() })
	defer stop()
	ids := make([]uint64, 64)
	for {
		n, err := a.set.Wait(ids)
		if err != nil {
			return // the set was closed
		}
		pause := false
		for _, id := range ids[:n] {
			pause = a.serve(int32(id)) || pause
		}
		if pause {
			time.Sleep(50 * time.Millisecond) // out of descriptors: let connections end
		}
	}
}

// serve accepts what listener id has waiting and hands it out; it
// reports whether accept ran out of descriptors.
func (a *acceptor) serve(id int32) (exhausted bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entries[id]
	if e == nil {
		return false // removed after the event
	}
	var fds []int
	e.raw.Control(func(lfd uintptr) {
		for len(fds) < 64 {
			nfd, _, err := unix.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			switch {
			case err == nil:
				fds = append(fds, nfd)
			case err == unix.EINTR || err == unix.ECONNABORTED:
			case err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOBUFS || err == unix.ENOMEM:
				exhausted = true
				return
			default: // EAGAIN: nothing left
				return
			}
		}
	})
	for _, fd := range fds {
		f := os.NewFile(uintptr(fd), "")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			exhausted = exhausted || errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
			continue
		}
		e.handle(c)
	}
	return exhausted
}
