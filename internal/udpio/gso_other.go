//go:build !linux

package udpio

import "net"

// Segmentation offload is Linux only: elsewhere every datagram is its own
// message, as before.
func enableOffload(*net.UDPConn) (gso, gro bool) { return false, false }
func putSegment([]byte, int) []byte              { return nil }
func segmentSize([]byte) int                     { return 0 }
func gsoRefused(error) bool                      { return false }
func disableGRO(*net.UDPConn) bool               { return true }
