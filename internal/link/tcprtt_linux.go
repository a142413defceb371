package link

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// tcpRTT returns the kernel's smoothed round-trip time of c's TCP
// connection, or 0 when c is not a TCP socket or the kernel will not say.
func tcpRTT(c net.Conn) time.Duration {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	var rtt time.Duration
	_ = rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			rtt = time.Duration(info.Rtt) * time.Microsecond
		}
	})
	return rtt
}
