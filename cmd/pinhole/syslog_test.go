package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSyslogPriorities: every record reaches the syslog socket as one
// datagram whose priority is daemon.<its level>, so logread shows info
// lines as daemon.info, not daemon.err as procd does for stderr.
func TestSyslogPriorities(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var fallback bytes.Buffer
	log := newSyslogLogger(path, &fallback, -4, "text").With("agent", "r1")
	log.Debug("details")
	log.Info("agent up", "udp", "0.0.0.0:1")
	log.Warn("relay unreachable")
	log.Error("agent stopped")
	want := []string{
		"<31>pinhole[%d]: level=DEBUG msg=details agent=r1",
		"<30>pinhole[%d]: level=INFO msg=\"agent up\" agent=r1 udp=0.0.0.0:1",
		"<28>pinhole[%d]: level=WARN msg=\"relay unreachable\" agent=r1",
		"<27>pinhole[%d]: level=ERROR msg=\"agent stopped\" agent=r1",
	}
	buf := make([]byte, 2048)
	for _, w := range want {
		ln.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("reading %q: %v", w, err)
		}
		w = strings.Replace(w, "%d", strconv.Itoa(os.Getpid()), 1)
		if got := string(buf[:n]); got != w {
			t.Errorf("got  %q\nwant %q", got, w)
		}
	}
	if fallback.Len() != 0 {
		t.Errorf("fallback written although the socket took every line: %q", fallback.String())
	}
}

// TestSyslogFallback: without a syslog socket (logd not running) lines
// go to the fallback writer instead of being lost.
func TestSyslogFallback(t *testing.T) {
	var fallback bytes.Buffer
	log := newSyslogLogger(filepath.Join(t.TempDir(), "none"), &fallback, 0, "text")
	log.Warn("relay unreachable")
	if got := fallback.String(); got != "level=WARN msg=\"relay unreachable\"\n" {
		t.Fatalf("fallback got %q", got)
	}
}
