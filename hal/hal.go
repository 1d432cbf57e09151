// Package hal is the seam between pinshadow and hardware: small interfaces
// for what the agent does with pins, PWM channels and I2C buses.
//
// Two implementations exist: hal/periph drives real Linux hardware through
// the GPIO character device, sysfs PWM and /dev/i2c-N; hal/fake is an
// in-memory stand-in for tests and simulation. Device drivers (package
// devices) depend only on these interfaces, so the same driver code runs on
// both.
//
// I2C uses periph's i2c.Bus as its bus type, so periph.io/x/devices drivers
// run unchanged on real and fake buses. Digital and PWM lines get our own
// interfaces: periph's gpio.PinIO is large, and its Read() on an output
// silently reconfigures the line as an input.
package hal

import (
	"context"
	"errors"
	"time"

	"periph.io/x/conn/v3/i2c"
)

// Level is a logical line level (after active-low inversion).
type Level bool

// Logical levels.
const (
	Low  Level = false
	High Level = true
)

// Pull selects an input's bias.
type Pull int

// Bias settings for inputs.
const (
	PullNone Pull = iota
	PullUp
	PullDown
)

// Edge selects which transitions an input reports.
type Edge int

// Edge selections.
const (
	EdgeNone Edge = iota
	EdgeRising
	EdgeFalling
	EdgeBoth
)

// OutputConfig configures a digital output at open time.
type OutputConfig struct {
	// ActiveLow inverts the physical level: logical High drives the line low.
	ActiveLow bool
	// Initial is the logical level applied when the line is opened. It is
	// applied together with the direction change so the line never glitches.
	Initial Level
}

// InputConfig configures a digital input at open time.
type InputConfig struct {
	ActiveLow bool
	Pull      Pull
	Edge      Edge
	// Debounce is how long the line must stay at a new level before the
	// change counts: shorter pulses are contact bounce and are dropped, and
	// an edge is reported only when the settled level differs from the last
	// one reported. Zero reports every edge.
	Debounce time.Duration
}

// EdgeEvent is one debounced transition of an input.
type EdgeEvent struct {
	Level Level // logical level after the edge
	// Time is when the transition was seen (hal/fake: the last wire change;
	// hal/periph: when the settled level was read).
	Time time.Time
}

// DigitalOut is an opened output line.
type DigitalOut interface {
	// Set drives the line to a logical level.
	Set(ctx context.Context, l Level) error
	// Level returns the last logical level set (never read back from the
	// line; see the package doc).
	Level() Level
	Name() string
	Close() error
}

// DigitalIn is an opened input line.
type DigitalIn interface {
	// Read returns the current logical level.
	Read(ctx context.Context) (Level, error)
	// WaitForEdge blocks until the next debounced edge selected at open time
	// or until ctx is done.
	WaitForEdge(ctx context.Context) (EdgeEvent, error)
	Name() string
	Close() error
}

// PWMOut is an opened PWM channel.
type PWMOut interface {
	// Set sets the duty cycle (0–1) and frequency in Hz and enables output.
	Set(ctx context.Context, duty float64, freqHz float64) error
	// Duty and Frequency return the last values set.
	Duty() float64
	Frequency() float64
	Name() string
	Close() error
}

// I2CBus is an I2C bus; it is periph's i2c.BusCloser so periph.io device
// drivers accept it directly.
type I2CBus = i2c.BusCloser

// HAL opens lines and buses by name. Names are implementation-specific:
// hal/periph accepts kernel line names ("GPIO17") and "chip/offset"
// ("gpiochip0/17"), buses as "1", "I2C1" or "/dev/i2c-1", PWM as
// "pwmchip0/0" or "DEVICE/CHANNEL" ("1f00098000.pwm/2"). Package board
// turns user-facing names ("pin11", "GPIO17") into these.
type HAL interface {
	OpenOutput(ctx context.Context, name string, cfg OutputConfig) (DigitalOut, error)
	OpenInput(ctx context.Context, name string, cfg InputConfig) (DigitalIn, error)
	OpenPWM(ctx context.Context, name string) (PWMOut, error)
	OpenI2C(ctx context.Context, bus string) (I2CBus, error)
	Close() error
}

// Errors callers act on.
var (
	// ErrNotFound: no line, channel or bus by that name.
	ErrNotFound = errors.New("hal: not found")
	// ErrBusy: the line is already open (by us or another process).
	ErrBusy = errors.New("hal: busy")
	// ErrClosed: the handle or HAL was closed.
	ErrClosed = errors.New("hal: closed")
	// ErrInvalid: a value out of range (duty outside 0–1, frequency ≤ 0, …).
	ErrInvalid = errors.New("hal: invalid argument")
	// ErrNACK: no device acknowledged the address.
	ErrNACK = errors.New("hal: i2c address not acknowledged")
	// ErrTimeout: the hardware did not answer in time.
	ErrTimeout = errors.New("hal: timeout")
)
