// Package admin is the local status endpoint of the agent and the relay: a
// loopback TCP port or a unix socket that answers every connection with one
// JSON document and closes. It is deliberately not HTTP: net/http would add
// about a megabyte to the router binary for a page nobody browses, and
// `pinhole status` (or `nc 127.0.0.1 7702`) needs only the document.
package admin

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pinhole/pinhole/internal/jsonw"
)

// Listen opens addr: a path starting with "/" is a unix socket, anything
// else a TCP address that must be on loopback unless allowRemote.
func Listen(addr string, allowRemote bool) (net.Listener, error) {
	if strings.HasPrefix(addr, "/") {
		ln, err := net.Listen("unix", addr)
		if err != nil {
			return nil, fmt.Errorf("listen admin %s: %w", addr, err)
		}
		return ln, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); !allowRemote && (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return nil, fmt.Errorf("admin address %q is not loopback", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen admin %s: %w", addr, err)
	}
	return ln, nil
}

// Document is a status document: it writes itself (as the object under
// key, "" for the whole document) with internal/jsonw, field by field in
// the order of its struct and its json tags, so that the admin port
// answers what encoding/json's Encoder would without linking it.
type Document interface {
	WriteJSON(w *jsonw.Writer, key string)
}

// Serve answers each connection on ln with status() as indented JSON until
// ctx ends or ln is closed.
func Serve(ctx context.Context, ln net.Listener, status func() Document) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			w := jsonw.Writer{Indent: "  ", HTML: true}
			status().WriteJSON(&w, "")
			c.Write(append(w.B, '\n'))
		})
	}
}

// Fetch reads the status document from a running agent or relay.
func Fetch(ctx context.Context, addr string) ([]byte, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w (is pinhole running, and is admin enabled?)", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return io.ReadAll(io.LimitReader(c, 4<<20))
}
