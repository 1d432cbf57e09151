// Package board knows the boards pinshadow runs on: which GPIO sits on
// which header pin, which buses and hardware-PWM channels exist and how to
// turn them on, and which pins a bus takes when enabled. It turns what a
// user writes in a configuration ("pin11", "GPIO18") into the names a
// hal.HAL opens, and refuses mistakes before any wire is driven: unknown
// pins (with a "did you mean"), ambiguous bare numbers, power pins, PWM on
// a pin without it, pins taken by an enabled bus, and two devices on one
// line or PWM channel (Claims).
//
// The package is pure data and logic: no hardware access. Detect reads
// only the device-tree model file, and only the path it is given.
//
// # Profiles
//
// Raspberry Pi Zero/Zero W (zero), Zero 2 W (zero2w), 3B/3B+ (pi3b), 4B
// (pi4b), 400 (pi400), Compute Module 4 on its IO board (cm4), 5 (pi5), and
// generic (any Linux board: lines by chip/offset or kernel line name, no
// header map). Detect picks one from /proc/device-tree/model; an override
// by name wins; an unknown model falls back to generic with a Note.
//
// Lines are handed to the HAL as "<chip label>/<GPIO>", e.g.
// "pinctrl-bcm2711/17", not as the kernel line name "GPIO17": the label
// is the same on every kernel, while chip numbers move (Pi 5: gpiochip4 on
// early kernels, gpiochip0 now) and mainline kernels name lines by function
// ("SDA1" for GPIO2). PWM channels are named "pwmchip0/N" on Pi 0–4 and by
// device link ("1f00098000.pwm/N") on a Pi 5, whose pwmchip number changed
// from 2 to 0 with kernel 6.12.
//
// # Adding a board
//
//  1. Add a Profile in Profiles (profiles.go): name and aliases, the label
//     of the GPIO chip whose offsets are the GPIO numbers (gpioinfo shows
//     it), the header (header40() if it is the Raspberry Pi layout), I2C
//     buses, PWM channels with their chip or device link and the overlay
//     that enables them, and the pins each bus reserves.
//  2. Add its /proc/device-tree/model prefix to MatchModel, before any
//     shorter prefix that would also match.
//  3. Add rows to the table tests: detection of the model string, a few pin
//     names, each PWM pin, each reserved pin.
//
// Facts that came from hardware reports rather than a board in hand are
// marked as such in comments; the hardware-in-the-loop tests confirm them.
package board
