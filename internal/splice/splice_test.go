package splice

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"testing"
)

func tcpPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestHalfClose: the client sends a request and half-closes; the reply
// must still arrive in full after the request direction finished.
func TestHalfClose(t *testing.T) {
	client, proxyIn := tcpPair(t)
	proxyOut, server := tcpPair(t)
	go Join(proxyIn, proxyOut, nil)

	go func() {
		req, _ := io.ReadAll(server) // until the client's FIN crosses the proxy
		reply := bytes.Repeat(req, 1000)
		server.Write(reply)
		server.Close()
	}()
	client.Write([]byte("ping"))
	client.CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("ping"), 1000)
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("reply after half-close: got %d bytes, want %d", len(got), len(want))
	}
}
