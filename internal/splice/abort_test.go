package splice

import (
	"bytes"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"
)

// TestJoinClean: both directions reach EOF, so the result is clean.
func TestJoinClean(t *testing.T) {
	client, proxyIn := tcpPair(t)
	proxyOut, server := tcpPair(t)
	done := make(chan Result, 1)
	go func() { done <- Join(proxyIn, proxyOut, nil) }()
	go func() { io.Copy(server, server); server.CloseWrite() }()
	client.Write([]byte("hello"))
	client.CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo: got %q, %v", got, err)
	}
	res := <-done
	if res.Aborted() || res.AToB != 5 || res.BToA != 5 {
		t.Fatalf("got %+v, want a clean join of 5 bytes each way", res)
	}
}

// TestJoinAbortResets: when the server resets mid-download, the join
// reports the abort and the client sees a reset, not a clean end of a
// truncated stream.
func TestJoinAbortResets(t *testing.T) {
	client, proxyIn := tcpPair(t)
	proxyOut, server := tcpPair(t)
	done := make(chan Result, 1)
	go func() { done <- Join(proxyIn, proxyOut, nil) }()
	server.Write(bytes.Repeat([]byte("x"), 64<<10))
	time.Sleep(50 * time.Millisecond)
	Reset(server)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(client)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read: got %v, want ECONNRESET", err)
	}
	select {
	case res := <-done:
		if !res.Aborted() {
			t.Fatalf("got %+v, want an aborted join", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("join did not end after the server reset")
	}
}

// TestJoinAbortWakesWriter: a direction blocked writing to a peer that
// does not read still ends when the other direction fails.
func TestJoinAbortWakesWriter(t *testing.T) {
	client, proxyIn := tcpPair(t)
	proxyOut, server := tcpPair(t)
	done := make(chan Result, 1)
	go func() { done <- Join(proxyIn, proxyOut, nil) }()
	// The server never reads; the client uploads until its writes block.
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := client.Write(chunk); err != nil {
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	Reset(server)
	select {
	case res := <-done:
		if !res.Aborted() {
			t.Fatalf("got %+v, want an aborted join", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("join blocked writing to a server that reset")
	}
}
