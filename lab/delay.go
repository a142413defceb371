package lab

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// delayLink adds one-way delay to a link without sch_netem (this kernel
// has none): a namespace with two interfaces, "in" facing the gateway and
// "out" facing the public bridge, and a layer-2 forwarder between them that
// holds every frame for the given time. Frames are read and written with
// AF_PACKET sockets created inside that namespace (setns on a locked OS
// thread), so the forwarder runs in the process that built the lab.
type delayLink struct {
	delay time.Duration
	fds   [2]int
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startDelay opens the two packet sockets in namespace ns and starts
// forwarding in both directions with delay d.
func startDelay(ns, ifA, ifB string, d time.Duration) (*delayLink, error) {
	dl := &delayLink{delay: d, stop: make(chan struct{})}
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns %s: %w", ns, err)
	}
	defer func() {
		// A thread that cannot go home stays locked, and the runtime
		// retires it when this goroutine ends instead of reusing it.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	for i, name := range []string{ifA, ifB} {
		fd, err := packetSocket(name)
		if err != nil {
			dl.close()
			return nil, fmt.Errorf("packet socket on %s in %s: %w", name, ns, err)
		}
		dl.fds[i] = fd
	}
	dl.wg.Go(func() { dl.forward(dl.fds[0], dl.fds[1]) })
	dl.wg.Go(func() { dl.forward(dl.fds[1], dl.fds[0]) })
	return dl, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func packetSocket(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, err
	}
	// Frames we send must not come back to our own reader (a loop).
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	// A read timeout lets the forwarder notice stop.
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

type frame struct {
	due time.Time
	b   []byte
}

// forward reads frames from src and writes each to dst once it is due.
// Order is kept (a constant delay never reorders).
func (dl *delayLink) forward(src, dst int) {
	queue := make(chan frame, 8192)
	var wg sync.WaitGroup
	wg.Go(func() {
		for f := range queue {
			if wait := time.Until(f.due); wait > 0 {
				time.Sleep(wait)
			}
			unix.Write(dst, f.b)
		}
	})
	defer wg.Wait()
	defer close(queue)
	buf := make([]byte, 65536)
	for {
		select {
		case <-dl.stop:
			return
		default:
		}
		n, err := unix.Read(src, buf)
		if err != nil || n <= 0 {
			continue // timeout (EAGAIN) or a transient error
		}
		select {
		case queue <- frame{due: time.Now().Add(dl.delay), b: append([]byte(nil), buf[:n]...)}:
		default: // a full queue is a full router buffer: drop
		}
	}
}

func (dl *delayLink) close() {
	select {
	case <-dl.stop:
	default:
		close(dl.stop)
	}
	dl.wg.Wait()
	for _, fd := range dl.fds {
		if fd > 0 {
			unix.Close(fd)
		}
	}
}
