//go:build !linux

package udpio

import (
	"errors"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// readBatches reads through x/net's ReadBatch, which elsewhere than Linux
// reads one datagram per call; syscalls_linux.go is the batched path.
func (u *Conn) readBatches(handle func(b []byte, from netip.AddrPort)) error {
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, bufSize)}
	}
	for {
		n, err := u.batch.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue
		}
		for _, m := range msgs[:n] {
			if ua, ok := m.Addr.(*net.UDPAddr); ok {
				handle(m.Buffers[0][:m.N], unmap(ua.AddrPort()))
			}
		}
	}
}

// sendto is writeOne's path for a batched socket's IPv4 peers; elsewhere
// than Linux it is the ordinary write.
func (u *Conn) sendto(b []byte, to netip.AddrPort) error {
	_, err := u.PacketConn.(*net.UDPConn).WriteToUDPAddrPort(b, to)
	return err
}
