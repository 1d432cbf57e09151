//go:build unix

package jobrun

import (
	"os/exec"
	"syscall"
)

// setProcAttr runs cmd in a process group of its own (so a timeout kills
// everything it started), as who when set.
func setProcAttr(cmd *exec.Cmd, who *runAs) error {
	a := &syscall.SysProcAttr{Setpgid: true}
	if who != nil {
		a.Credential = &syscall.Credential{Uid: who.uid, Gid: who.gid, Groups: who.groups}
	}
	cmd.SysProcAttr = a
	return nil
}

// killGroup kills cmd's whole process group.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// signaled says which signal ended the process, if one did.
func signaled(ee *exec.ExitError) (string, bool) {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal().String(), true
	}
	return "", false
}
