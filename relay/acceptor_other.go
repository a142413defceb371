//go:build !linux

package relay

import (
	"context"
	"net"
	"time"
)

// acceptor: see acceptor.go. Without epoll, one goroutine per listener.
type acceptor struct{ acceptorBase }

func newAcceptor() (*acceptor, error) { return &acceptor{}, nil }

func (a *acceptor) add(ln *net.TCPListener, handle acceptFunc) (remove func(), err error) {
	e := &acceptEntry{handle: handle}
	a.mu.Lock()
	id := a.registerLocked(e)
	a.mu.Unlock()
	quit := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				select {
				case <-quit:
					return
				default:
				}
				if isClosed(err) {
					return
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			a.mu.Lock()
			if a.entries[id] == nil {
				a.mu.Unlock()
				c.Close()
				return
			}
			handle(c)
			a.mu.Unlock()
		}
	}()
	return func() {
		a.mu.Lock()
		delete(a.entries, id)
		a.mu.Unlock()
		close(quit)
	}, nil
}

func (a *acceptor) run(ctx context.Context) { <-ctx.Done() }
