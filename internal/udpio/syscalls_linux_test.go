package udpio

import (
	"bytes"
	"encoding/binary"
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
