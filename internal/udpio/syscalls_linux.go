package udpio

// The calls an idle relay makes for every keepalive (one recvmmsg, one
// sendto for the answer) are made as raw system calls, without telling
// the scheduler: the socket is non-blocking, so neither can block, and
// entering a system call the usual way wakes the runtime's monitor thread
// (sysmon) whenever it sleeps because every P is idle, which is exactly
// the state between two keepalives: a futex wake and a context switch of
// a second thread per keepalive, on top of the reader's own.

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr (recvmmsg(2)): a msghdr and the length the
// kernel received into it. Go pads it to the msghdr's alignment as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// recvmmsgCalls counts recvmmsg system calls (tests read it).
var recvmmsgCalls atomic.Uint64

// readBatches reads with recvmmsg(2) directly rather than through x/net's
// ReadBatch, for what that costs a relay whose agents are idle:
//
//   - One system call per wake-up. Datagrams are handled inside the
//     socket's RawConn.Read callback, which keeps waiting for readability
//     between batches: a batch shorter than the buffers means the queue
//     was empty, so the next step is the wait, not a recvmmsg that
//     returns EAGAIN. The poller is edge-triggered and only re-armed when
//     Read starts, so a datagram that arrives after the short batch still
//     ends the wait at once. A lone keepalive cost two recvmmsg before.
//   - A raw system call (see sendto), as the socket never blocks.
//   - No allocation per datagram: the source is parsed from the raw
//     sockaddr into a netip.AddrPort, where x/net makes a *net.UDPAddr.
func (u *Conn) readBatches(handle func(b []byte, from netip.AddrPort)) error {
	n, size := batch, bufSize
	if u.gro {
		n, size = groBatch, groSize
	}
	hdrs := make([]mmsghdr, n)
	names := make([]unix.RawSockaddrInet4, n)
	iovs := make([]unix.Iovec, n)
	oobs := make([][oobLen]byte, n)
	for i := range hdrs {
		buf := make([]byte, size)
		iovs[i].Base = &buf[0]
		iovs[i].SetLen(size)
		h := &hdrs[i].hdr
		h.Iov = &iovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&names[i]))
		h.Control = &oobs[i][0]
	}
	// The kernel writes back the lengths and flags of each message it
	// fills; the pointers stay as set above.
	reset := func() {
		for i := range hdrs {
			h := &hdrs[i].hdr
			h.Namelen = unix.SizeofSockaddrInet4
			h.SetControllen(oobLen)
			h.Flags = 0
		}
	}
	read := func(fd uintptr) bool {
		for failed := 0; failed < batch; {
			reset()
			recvmmsgCalls.Add(1)
			got, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(n), 0, 0, 0)
			switch errno {
			case 0:
			case unix.EAGAIN:
				return false // wait for the next datagram
			default:
				// An ICMP error queued on the socket (a peer's port
				// unreachable) or a signal: read on, as x/net's
				// path did, but never spin on one that stays.
				failed++
				continue
			}
			for i := range int(got) {
				h := &hdrs[i].hdr
				from, ok := sockaddr4(&names[i], h.Namelen)
				if !ok {
					continue
				}
				b := unsafe.Slice(iovs[i].Base, size)[:hdrs[i].n]
				seg := 0
				if u.gro {
					seg = segmentSize(oobs[i][:h.Controllen])
				}
				split(b, seg, from, handle)
			}
			if int(got) < n {
				return false // the queue is empty: wait, no recvmmsg to learn it
			}
			failed = 0
		}
		return false
	}
	for {
		// read never ends the wait itself: Read returns when the socket
		// closes, or on a read deadline someone set (read on, as before).
		if err := u.rc.Read(read); errors.Is(err, net.ErrClosed) {
			return err
		}
	}
}

// sockaddr4 reads an AF_INET source address.
func sockaddr4(sa *unix.RawSockaddrInet4, n uint32) (netip.AddrPort, bool) {
	if n < unix.SizeofSockaddrInet4 || sa.Family != unix.AF_INET {
		return netip.AddrPort{}, false
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port), true
}

// sendto writes one datagram to an IPv4 peer with a raw sendto(2) (see
// the top of this file); b must not be empty. The socket's send buffer
// being full (EAGAIN) waits for room, as a write through net does.
func (u *Conn) sendto(b []byte, to netip.AddrPort) error {
	s := senders.Get().(*sender)
	defer senders.Put(s)
	s.b = b
	s.sa.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&s.sa.Port))[:], to.Port())
	s.sa.Addr = to.Addr().Unmap().As4()
	err := u.rc.Write(s.fn)
	s.b = nil
	if err == nil && s.errno != 0 {
		err = s.errno
	}
	return err
}

// sender is one sendto's arguments, pooled with the callback bound to
// them, so a write allocates nothing.
type sender struct {
	b     []byte
	sa    unix.RawSockaddrInet4
	errno unix.Errno
	fn    func(fd uintptr) bool
}

var senders = sync.Pool{New: func() any {
	s := new(sender)
	s.fn = s.write
	return s
}}

func (s *sender) write(fd uintptr) bool {
	for {
		_, _, s.errno = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&s.b[0])), uintptr(len(s.b)),
			0, uintptr(unsafe.Pointer(&s.sa)), unix.SizeofSockaddrInet4)
		if s.errno != unix.EINTR {
			return s.errno != unix.EAGAIN
		}
	}
}
