package main

import "syscall"

// childProcAttr puts a child in its own process group, so that a kill
// reaches everything it started and a Ctrl-C at the terminal reaches only
// chaos, which then stops its children itself; the kernel kills the child
// should chaos die without that chance (SIGKILL).
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
