package udpio

import (
	"encoding/binary"
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enableOffload asks the kernel for UDP segmentation offload on send
// (UDP_SEGMENT, Linux 4.18) and coalesced reads (UDP_GRO, Linux 5.0).
// Each sealed datagram stays a datagram of its own on the wire: GSO only
// lets one sendmmsg entry carry a run of them, which the kernel (or the
// NIC) cuts apart after one trip through the stack, and GRO hands a run
// that arrived back to back up as one buffer with its segment size.
func enableOffload(uc *net.UDPConn) (gso, gro bool) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return false, false
	}
	rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
		gso = err == nil
		gro = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) == nil
	})
	return gso, gro
}

// disableGRO turns coalesced reads off again; it reports success.
func disableGRO(uc *net.UDPConn) (off bool) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	rc.Control(func(fd uintptr) {
		off = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 0) == nil
	})
	return off
}

// putSegment writes the UDP_SEGMENT control message for datagrams of size
// bytes into oob and returns it.
func putSegment(oob []byte, size int) []byte {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(size))
	return oob[:unix.CmsgSpace(2)]
}

// segmentSize returns the segment size of a coalesced read from its
// control messages, 0 if the read is one datagram. UDP_GRO is the only
// control message these sockets ask for, so it comes first when it comes.
func segmentSize(oob []byte) int {
	if len(oob) < unix.CmsgLen(4) {
		return 0
	}
	if h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0])); h.Level != unix.SOL_UDP || h.Type != unix.UDP_GRO {
		return 0
	}
	return int(int32(binary.NativeEndian.Uint32(oob[unix.CmsgLen(0):])))
}

// gsoRefused reports an error with which the kernel refuses segmentation
// itself (no checksum offload on the route, an unknown control message),
// not the destination.
func gsoRefused(err error) bool {
	return errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOPROTOOPT)
}
