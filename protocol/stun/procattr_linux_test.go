package stun

import "syscall"

// dieWithParent has the kernel kill turnserver if the test binary dies
// before its Cleanup runs (a go test -timeout panic, say).
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
