package relay

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// acceptor: see acceptor.go.
type acceptor struct {
	acceptorBase
	ep *os.File // the epoll set, non-blocking, so Go's poller waits on it
	rc syscall.RawConn
}

func newAcceptor() (*acceptor, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	ep := os.NewFile(uintptr(fd), "epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil, err
	}
	return &acceptor{ep: ep, rc: rc}, nil
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
	ctl := func(op int) error {
		var err error
		cerr := lrc.Control(func(lfd uintptr) {
			err = a.rc.Control(func(epfd uintptr) {
				ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: id}
				err = unix.EpollCtl(int(epfd), op, int(lfd), &ev)
			})
		})
		return errors.Join(cerr, err)
	}
	forget := func() {
		a.mu.Lock()
		delete(a.entries, id)
		a.mu.Unlock()
	}
	if err := ctl(unix.EPOLL_CTL_ADD); err != nil {
		forget()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return func() {
		forget()
		ctl(unix.EPOLL_CTL_DEL) // fails only when ln or the set is closed already, which removes it too
	}, nil
}

// run serves the listeners until ctx ends.
func (a *acceptor) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { a.ep.Close() })
	defer stop()
	events := make([]unix.EpollEvent, 64)
	for {
		var n int
		var werr error
		err := a.rc.Read(func(fd uintptr) bool {
			for {
				if n, werr = unix.EpollWait(int(fd), events, 0); werr != unix.EINTR {
					return werr != nil || n > 0 // false: nothing ready, wait for the set to become readable
				}
			}
		})
		if err != nil || werr != nil {
			return // the set was closed
		}
		pause := false
		for _, ev := range events[:n] {
			pause = a.serve(ev.Fd) || pause
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
