package main

import (
	"os/exec"
	"syscall"
)

// dieWithHarness makes cmd's process killed if the harness dies without
// stopping it (a crash, SIGKILL), so that no server goes on holding its
// port and data. The signal follows the OS thread that started the
// process, which Go ends only for goroutines locked to it; none is.
func dieWithHarness(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
