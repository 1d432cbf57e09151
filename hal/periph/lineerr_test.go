package periph

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/pinshadow/pinshadow/hal"
)

// periph's gpioioctl formats the kernel's errno with %v, so a line held by
// another process must be recognised from the text too (found by the HIL
// VM test).
func TestLineErrBusy(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("request line: %w", syscall.EBUSY),
		fmt.Errorf("gpioioctl: GPIO_V2_GET_LINE_IOCTL: %v", syscall.EBUSY),
	} {
		if got := lineErr("open output", "GPIO17", err); !errors.Is(got, hal.ErrBusy) {
			t.Errorf("%v: not hal.ErrBusy: %v", err, got)
		}
	}
	if got := lineErr("open output", "GPIO17", errors.New("invalid argument")); errors.Is(got, hal.ErrBusy) {
		t.Errorf("a non-busy error became ErrBusy: %v", got)
	}
}
