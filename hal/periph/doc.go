// Package periph is the hal.HAL backend for real Linux hardware, built on
// periph.io host v3.8.5 without host.Init() and without /dev/mem:
//
//   - GPIO through the kernel's character device (periph's gpioioctl):
//     lines by kernel name ("GPIO17") or chip/offset ("gpiochip0/17", the
//     chip by name or label, e.g. "pinctrl-rp1/17"). Bare numbers are
//     rejected as ambiguous.
//   - PWM through /sys/class/pwm, implemented here (periph has none):
//     "pwmchip0/1" or, stable across kernels, "DEVICE/CHANNEL" where DEVICE
//     is the basename of the chip's device link ("1f00098000.pwm/2" on a Pi 5).
//   - I2C through /dev/i2c-N (periph's sysfs-i2c): "1", "I2C1", "/dev/i2c-1".
//
// # Rules this package keeps (the pitfalls of periph it works around)
//
//   - An output is never Read(): gpioioctl's Read on an output reconfigures
//     it as a pulled-up input. The last level written is remembered instead.
//   - WaitForEdge is only called with positive timeouts, in slices, checking
//     the context between them (gpioioctl treats -1 as expired, 0 as
//     forever); Close calls Halt to cut a wait short.
//   - Debounce and active-low are done in software here: periph's gpio API
//     exposes neither.
//   - The initial level of an output is applied by the first Out(), which in
//     periph switches direction before writing the value (see OpenOutput).
//   - sysfs PWM: export may answer EBUSY (already exported: fine); udev
//     makes the new files writable some milliseconds later (we poll, bounded
//     and cancellable); period is written before duty_cycle (in ns) unless
//     the new period is shorter than the current duty cycle.
//
// # Testing
//
// Options injects the sysfs root (and a fake kernel behind it, in this
// package's tests), the line lookup (periph's gpiotest.Pin works) and the
// I2C opener (i2ctest.Playback works). Tests that need a real kernel go in
// files tagged //go:build hil and call New(Options{}) on the device.
//
// # Adding a backend
//
// A new backend (another GPIO library, a remote board, …) implements
// hal.HAL: the four Open methods and Close, returning errors that wrap
// hal's sentinels (ErrNotFound with a hint saying how to enable the thing,
// ErrBusy, ErrClosed, ErrInvalid, ErrNACK, ErrTimeout), never panicking,
// honouring contexts on every blocking call, and keeping the rules above
// that apply to it. Copy this package's tests against a simulated kernel.
package periph
