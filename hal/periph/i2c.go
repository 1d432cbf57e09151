package periph

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"github.com/pinshadow/pinshadow/hal"
)

const i2cHint = "enable it with dtparam=i2c_arm=on (raspi-config → Interface Options → I2C), check ls /dev/i2c-*, and add the user to group i2c"

// BusNumber extracts N from "N", "I2CN", "i2c-N" or "/dev/i2c-N".
func BusNumber(name string) (int, error) {
	n := strings.TrimPrefix(name, "/dev/")
	for _, p := range []string{"i2c-", "I2C", "i2c"} {
		n = strings.TrimPrefix(n, p)
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("periph: i2c bus %q: want 1, I2C1 or /dev/i2c-1: %w", name, hal.ErrInvalid)
	}
	return v, nil
}

// OpenI2C opens /dev/i2c-N through periph's sysfs-i2c driver.
func (h *HAL) OpenI2C(ctx context.Context, name string) (hal.I2CBus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, err := BusNumber(name)
	if err != nil {
		return nil, err
	}
	b, err := h.opts.OpenI2C(strconv.Itoa(n))
	if err != nil {
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
			return nil, fmt.Errorf("periph: open i2c %q: %w (add the user to group i2c)", name, err)
		}
		return nil, fmt.Errorf("periph: open i2c %q: %w: %v; %s", name, hal.ErrNotFound, err, i2cHint)
	}
	out := &bus{b: b, name: name}
	key := fmt.Sprintf("i2c:%p", out) // a bus may be opened many times
	if err := h.claim(key, "i2c "+strconv.Quote(name), out.Close); err != nil {
		_ = b.Close()
		return nil, err
	}
	out.release = func() { h.release(key) }
	return out, nil
}

// bus maps kernel errors onto hal's sentinels so drivers can tell "nothing
// answered" from other failures.
type bus struct {
	b       i2c.BusCloser
	name    string
	release func()
	once    sync.Once
	err     error
}

func (b *bus) Tx(addr uint16, w, r []byte) error {
	if err := b.b.Tx(addr, w, r); err != nil {
		return I2CError(b.name, addr, err)
	}
	return nil
}

// I2CError classifies an I2C transfer error. periph's sysfs-i2c formats
// the errno with %v, so the error text is all that is left: the i2c-dev
// drivers report a missing ACK as EREMOTEIO ("remote I/O error", bcm2835)
// or ENXIO ("no such device or address"), a stuck bus as ETIMEDOUT.
func I2CError(busName string, addr uint16, err error) error {
	msg := err.Error()
	switch {
	case isRemoteIO(err), errors.Is(err, syscall.ENXIO),
		strings.Contains(msg, "remote I/O error"), strings.Contains(msg, "no such device or address"):
		return fmt.Errorf("i2c %s: addr %#x: %w (is the chip wired, powered and at this address? try i2cdetect -y %s): %v", busName, addr, hal.ErrNACK, busName, err)
	case errors.Is(err, syscall.ETIMEDOUT), strings.Contains(msg, "timed out"):
		return fmt.Errorf("i2c %s: addr %#x: %w: %v", busName, addr, hal.ErrTimeout, err)
	}
	return fmt.Errorf("i2c %s: addr %#x: %w", busName, addr, err)
}

// SetSpeed passes through; on a Raspberry Pi the kernel does not allow it
// (set dtparam=i2c_arm_baudrate= instead).
func (b *bus) SetSpeed(f physic.Frequency) error { return b.b.SetSpeed(f) }
func (b *bus) String() string                    { return b.b.String() }

// Close closes the bus file (once).
func (b *bus) Close() error {
	b.once.Do(func() {
		b.release()
		b.err = b.b.Close()
	})
	return b.err
}
