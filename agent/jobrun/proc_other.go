//go:build !unix

package jobrun

import (
	"fmt"
	"os/exec"
)

func setProcAttr(cmd *exec.Cmd, who *runAs) error {
	return fmt.Errorf("%w: run-handler needs a Unix system (process groups, users)", ErrHandler)
}

func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

func signaled(*exec.ExitError) (string, bool) { return "", false }
