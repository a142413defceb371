package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"time"

	"github.com/pinhole/pinhole/internal/seqdgram"
)

// Services and clients for end-to-end checks through the tunnel:
//
//	probe tcp-echo 127.0.0.1:8000        echo every TCP connection
//	probe udp-echo 127.0.0.1:8001        echo every datagram
//	probe tcp-check HOST:PORT BYTES [MBIT]  send random bytes (paced to MBIT/s), compare the echo's sha256
//	probe udp-check HOST:PORT COUNT      send numbered datagrams, count intact echoes

func tcpEcho(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			io.Copy(c, c)
			c.(*net.TCPConn).CloseWrite()
			c.Close()
		}()
	}
}

func udpEcho(addr string) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		pc.WriteTo(buf[:n], from)
	}
}

// TCPCheck is what tcp-check prints.
type TCPCheck struct {
	Bytes   int     `json:"bytes"`
	Echoed  int     `json:"echoed"`
	SHA256  string  `json:"sha256"`
	Intact  bool    `json:"intact"`
	Seconds float64 `json:"seconds"`
	Mbps    float64 `json:"mbit_per_s"` // payload both ways over elapsed time
	Error   string  `json:"error,omitempty"`
}

func tcpCheck(addr string, n int, mbit float64) (*TCPCheck, error) {
	payload := make([]byte, n)
	rand.Read(payload)
	want := sha256.Sum256(payload)
	r := &TCPCheck{Bytes: n, SHA256: hex.EncodeToString(want[:])}
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		r.Error = err.Error()
		return r, nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	go func() { pacedWrite(c, payload, mbit); c.(*net.TCPConn).CloseWrite() }()
	got, err := io.ReadAll(c)
	if err != nil {
		r.Error = err.Error()
	}
	r.Seconds = time.Since(start).Seconds()
	r.Echoed = len(got)
	sum := sha256.Sum256(got)
	r.Intact = sum == want
	r.Mbps = float64(2*len(got)) * 8 / r.Seconds / 1e6
	return r, nil
}

// UDPCheck is what udp-check prints.
type UDPCheck struct {
	Sent     int `json:"sent"`
	Received int `json:"received"`
	Corrupt  int `json:"corrupt"`
}

func udpCheck(addr string, n int) (*UDPCheck, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &UDPCheck{Sent: n}
	seen := make(map[int]bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for len(seen) < n {
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			m, err := c.Read(buf)
			if err != nil {
				return
			}
			seq, ok := seqdgram.Parse(buf[:m])
			if !ok {
				r.Corrupt++
				continue
			}
			seen[seq] = true
		}
	}()
	for i := range n {
		c.Write(seqdgram.Make(i))
		time.Sleep(2 * time.Millisecond) // a steady client, not a flood
	}
	<-done
	r.Received = len(seen)
	return r, nil
}

// pacedWrite writes p in 64 KiB pieces, no faster than mbit Mbit/s (all
// at once when mbit is 0): a long transfer that spans path changes.
func pacedWrite(c net.Conn, p []byte, mbit float64) {
	if mbit <= 0 {
		c.Write(p)
		return
	}
	start := time.Now()
	for off := 0; off < len(p); {
		end := min(off+64<<10, len(p))
		if _, err := c.Write(p[off:end]); err != nil {
			return
		}
		off = end
		due := start.Add(time.Duration(float64(off*8) / mbit * 1e3)) // bits / (Mbit/s) = µs; * 1e3 = ns
		time.Sleep(time.Until(due))
	}
}
