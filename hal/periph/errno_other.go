//go:build !linux

package periph

// isRemoteIO: EREMOTEIO is Linux-only; elsewhere the message check decides.
func isRemoteIO(error) bool { return false }
