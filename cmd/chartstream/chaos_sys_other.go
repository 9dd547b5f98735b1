//go:build !linux

package main

import "syscall"

// childProcAttr puts a child in its own process group, so that a kill
// reaches everything it started and a Ctrl-C at the terminal reaches only
// chaos, which then stops its children itself.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
