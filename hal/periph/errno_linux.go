package periph

import (
	"errors"
	"syscall"
)

// isRemoteIO reports EREMOTEIO, which only Linux defines.
func isRemoteIO(err error) bool { return errors.Is(err, syscall.EREMOTEIO) }
