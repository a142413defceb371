//go:build !linux

package stun

import "syscall"

func dieWithParent() *syscall.SysProcAttr { return nil }
