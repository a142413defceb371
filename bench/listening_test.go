package bench

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"
	"testing"
)

// listeningTCPPorts returns the local ports of this network namespace's
// TCP sockets in the LISTEN state, IPv4 and IPv6, from the kernel's
// sock_diag netlink interface. The relay-scale benchmark asks it which
// exposed ports have a listener before dialing them: dialing a closed
// port costs about 50 µs of CPU (the SYN, the RST, the dial's goroutine
// and poller work), so dialing every closed port of 10,000 in each round
// kept more than one core busy during a reconnect storm and slowed the
// very storm it measured. Reading the table is read-only: unlike a trial
// bind, it never takes a port from the relay.
func listeningTCPPorts() (map[uint16]bool, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, sockDiagProtocol)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	ports := map[uint16]bool{}
	for _, family := range []byte{syscall.AF_INET, syscall.AF_INET6} {
		if err := dumpListeners(fd, family, ports); err != nil {
			return nil, err
		}
	}
	return ports, nil
}

const (
	sockDiagProtocol = 4  // NETLINK_SOCK_DIAG
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpListen        = 10 // TCP_LISTEN in the kernel's state numbering
	nlHeaderLen      = 16 // struct nlmsghdr
	diagRequestLen   = 56 // struct inet_diag_req_v2
)

// dumpListeners asks for one family's listening TCP sockets and adds
// their ports to ports.
func dumpListeners(fd int, family byte, ports map[uint16]bool) error {
	req := make([]byte, nlHeaderLen+diagRequestLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], sockDiagByFamily)
	binary.NativeEndian.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1) // sequence
	req[nlHeaderLen] = family
	req[nlHeaderLen+1] = syscall.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[nlHeaderLen+4:], 1<<tcpListen)
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return nil
			case syscall.NLMSG_ERROR:
				return errors.New("sock_diag: the kernel refused the dump")
			}
			// struct inet_diag_msg: family, state, timer, retrans, then
			// the socket id, whose first field is the source port in
			// network order.
			if len(m.Data) >= 6 && m.Data[1] == tcpListen {
				ports[binary.BigEndian.Uint16(m.Data[4:])] = true
			}
		}
	}
}

// TestListeningTCPPortsSeesAListener: a listener's port is in the table
// while it listens and gone once it is closed.
func TestListeningTCPPortsSeesAListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ports, err := listeningTCPPorts()
	if err != nil {
		t.Fatal(err)
	}
	if !ports[port] {
		t.Fatalf("port %d listens but is not in the table (%d ports listed)", port, len(ports))
	}
	ln.Close()
	if ports, err = listeningTCPPorts(); err != nil {
		t.Fatal(err)
	}
	if ports[port] {
		t.Fatalf("port %d closed but still listed", port)
	}
}
