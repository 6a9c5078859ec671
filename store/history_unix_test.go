//go:build unix

package store

import (
	"os"
	"os/exec"
	"syscall"
)

func killSelf() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }

func killedBySIGKILL(ee *exec.ExitError) bool {
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
