package udpio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestReadLoopLoneDatagramsOneSyscall: datagrams sent one at a time, each
// after the last was handled, are all handled, from the sender's address,
// and each costs one recvmmsg: a short batch is taken as an empty queue,
// not confirmed by a second call that returns EAGAIN (which x/net's
// ReadBatch loop made: two calls per datagram). Then bursts that fill and
// overflow a batch: every datagram arrives, in order, none waits for a
// later one to wake the reader (each burst must be complete on its own).
func TestReadLoopLoneDatagramsOneSyscall(t *testing.T) {
	rx := New(listenUDP(t))
	defer rx.Close()
	rx.NoCoalescing()
	tx := listenUDP(t)
	to := rx.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
	want := tx.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()

	got := make(chan uint32, 1024)
	go rx.ReadLoop(func(b []byte, from netip.AddrPort) {
		if from != want {
			t.Errorf("datagram from %v, sent from %v", from, want)
		}
		got <- binary.BigEndian.Uint32(b)
	})
	send := func(i uint32) {
		b := bytes.Repeat([]byte{byte(i)}, 100)
		binary.BigEndian.PutUint32(b, i)
		if _, err := tx.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
	}
	receive := func(i uint32) {
		select {
		case v := <-got:
			if v != i {
				t.Fatalf("datagram %d arrived, want %d", v, i)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("datagram %d not handled within 2 s", i)
		}
	}

	const lone = 200
	send(0) // the reader's first call may have found the queue empty
	receive(0)
	before := recvmmsgCalls.Load()
	for i := uint32(1); i <= lone; i++ {
		send(i)
		receive(i)
	}
	// The reader has handled the last datagram but may not have made
	// its call for it yet: allow a few calls of slack, far below 2 per.
	time.Sleep(50 * time.Millisecond)
	if calls := recvmmsgCalls.Load() - before; calls > lone+lone/10 {
		t.Errorf("%d recvmmsg calls for %d lone datagrams, want about one each", calls, lone)
	}

	next := uint32(lone + 1)
	for _, burst := range []int{1, 63, 64, 65, 128, 200} {
		for k := range burst {
			send(next + uint32(k))
		}
		for k := range burst {
			receive(next + uint32(k))
		}
		next += uint32(burst)
	}
}

// TestSendtoRaw: a lone datagram written at once (SendNow with an empty
// queue: the raw sendto) reaches an IPv4 peer intact and from the
// socket's address, also when the peer is given as an IPv4-mapped IPv6
// address; on a closed socket it fails with net.ErrClosed.
func TestSendtoRaw(t *testing.T) {
	tx := New(listenUDP(t))
	rx := listenUDP(t)
	to := rx.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
	from := tx.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
	mapped := netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port())
	buf := make([]byte, 2048)
	for i, dst := range []netip.AddrPort{to, mapped} {
		want := bytes.Repeat([]byte{byte(i + 1)}, 1200)
		if err := tx.SendNow(want, dst); err != nil {
			t.Fatalf("SendNow to %v: %v", dst, err)
		}
		rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, src, err := rx.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("to %v: %v", dst, err)
		}
		if !bytes.Equal(buf[:n], want) || src != from {
			t.Fatalf("to %v: %d bytes from %v, want the 1200 sent from %v", dst, n, src, from)
		}
	}
	tx.Close()
	if err := tx.SendNow([]byte{1}, to); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SendNow after Close: %v, want net.ErrClosed", err)
	}
}
