// Package devices is the layer between the agent and the hardware drivers:
// every sensor or actuator is a Device with typed properties, so the agent
// (reconcile loop, sensor reporter, config validation) never knows chip
// details.
//
// # Model
//
// A Device exposes a fixed list of Property values (name, type bool, number
// or enum, unit, range, readable/writable). Read returns every readable
// property at once (one bus burst where the chip allows it): a sensor
// reporter calls it on a tick, and the reconcile loop calls it after a Write
// to learn what the hardware now has. Write sets one writable property.
// Outputs report what the hardware holds (a chip's registers, or the HAL's
// last level set; never a GPIO read-back of an output, see package hal).
// Devices with inputs that change between ticks (buttons, PIR) also implement
// Watcher so the agent can report edges as they happen.
//
// # Drivers and the registry
//
// A Driver is a descriptor: a name ("relay", "bme280", …), a plain options
// struct with defaults and a Validate method (usable without hardware, so
// config validation can run on a laptop), a function listing the properties a
// device with given options will have, and an Open function that takes an Env
// (the HAL lines, shared I2C buses and sysfs root) and returns a Device. A
// Registry holds drivers by name; it is a value built by NewRegistry (the
// built-in set is devices/builtin.NewRegistry). There is no package-level
// mutable state.
//
// The drivers live in sub-packages: devices/gpio (relay, led, button,
// switch, pir), devices/pwm (pwm, fan, servo), one package per I2C chip
// (bmx280, sht3x, bh1750, ads1115, pca9685, mcp23017, ina219, aht20) and the
// Linux sysfs sensors (ds18b20, cputemp). Each also offers a typed
// constructor taking the opened HAL handle or i2c.Bus and its options, for
// callers that wire hardware themselves.
//
// # Adding a driver
//
//  1. Create devices/<chip> with an Options struct (plain fields with yaml
//     tags, wiring included: pin, bus, address), a Defaults function and
//     Options.Validate returning errors that wrap ErrInvalidOptions and name
//     the field, the value and what is allowed.
//  2. Write the typed constructor New(handle, Options) (*Dev, error) that
//     validates, checks the chip's identity where it has one, configures it
//     and returns a Dev implementing Device (safe for concurrent use; errors
//     wrapped with %w so hal.ErrNACK and friends stay visible).
//  3. Export Driver() devices.Driver built with devices.Define, and add it to
//     devices/builtin.
//  4. Add a register model to hal/fake/chips (for I2C chips) and test the
//     driver against it and against a datasheet transcript
//     (i2ctest.Playback with DontPanic), including the error paths.
//
// Prefer a periph.io/x/devices/v3 driver behind the Device interface when it
// fits; when it does not (blocking without a context, unbounded loops,
// global registration, swallowed errors, datasheet mistakes), write our own
// and say why in the package doc.
package devices

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type is the type of a property's value.
type Type int

// Property value types.
const (
	TypeBool Type = iota + 1
	TypeNumber
	TypeEnum
)

func (t Type) String() string {
	switch t {
	case TypeBool:
		return "bool"
	case TypeNumber:
		return "number"
	case TypeEnum:
		return "enum"
	}
	return "Type(" + strconv.Itoa(int(t)) + ")"
}

// Value is one property value: a bool, a number or an enum choice. The zero
// Value is "no value" (Type() == 0).
type Value struct {
	t Type
	b bool
	n float64
	s string
}

// Bool returns a bool Value.
func Bool(b bool) Value { return Value{t: TypeBool, b: b} }

// Number returns a number Value.
func Number(n float64) Value { return Value{t: TypeNumber, n: n} }

// Enum returns an enum Value holding one of a property's choices.
func Enum(s string) Value { return Value{t: TypeEnum, s: s} }

// Type returns the value's type, 0 for the zero Value.
func (v Value) Type() Type { return v.t }

// Bool returns the bool held (false for other types).
func (v Value) Bool() bool { return v.b }

// Number returns the number held (0 for other types).
func (v Value) Number() float64 { return v.n }

// Enum returns the enum choice held ("" for other types).
func (v Value) Enum() string { return v.s }

// Any returns the value as bool, float64 or string (nil for the zero Value),
// the shape a JSON shadow document needs.
func (v Value) Any() any {
	switch v.t {
	case TypeBool:
		return v.b
	case TypeNumber:
		return v.n
	case TypeEnum:
		return v.s
	}
	return nil
}

func (v Value) String() string {
	switch v.t {
	case TypeBool:
		return strconv.FormatBool(v.b)
	case TypeNumber:
		return strconv.FormatFloat(v.n, 'g', -1, 64)
	case TypeEnum:
		return strconv.Quote(v.s)
	}
	return "<none>"
}

// Range is the closed interval a number property's values lie in.
type Range struct {
	Min, Max float64
}

// Property describes one property of a device.
type Property struct {
	// Name is unique within a device; configs map shadow keys to it.
	Name string
	Type Type
	// Unit is a short SI-style unit ("°C", "%", "%RH", "Pa", "lx", "V",
	// "A", "W", "°"); empty for bools and enums.
	Unit string
	// Range bounds number values (nil: unbounded). For writable properties
	// a Write outside it fails; for sensors it is the chip's measuring range.
	Range *Range
	// Choices lists the valid values of an enum.
	Choices []string
	// Readable properties appear in Read's result; Writable ones accept
	// Write.
	Readable, Writable bool
	// Description is a short human sentence for docs and error messages.
	Description string
}

// Check reports whether v is a valid value for p (type, finite, range,
// choice). Errors wrap ErrInvalidValue.
func (p Property) Check(v Value) error {
	if v.t != p.Type {
		return fmt.Errorf("%w: property %q takes a %s, got %s %s", ErrInvalidValue, p.Name, p.Type, typeName(v.t), v)
	}
	switch p.Type {
	case TypeNumber:
		if math.IsNaN(v.n) || math.IsInf(v.n, 0) {
			return fmt.Errorf("%w: property %q: %v is not a finite number", ErrInvalidValue, p.Name, v.n)
		}
		if p.Range != nil && (v.n < p.Range.Min || v.n > p.Range.Max) {
			return fmt.Errorf("%w: property %q: %v%s is outside %v…%v%s", ErrInvalidValue, p.Name, v.n, p.Unit, p.Range.Min, p.Range.Max, p.Unit)
		}
	case TypeEnum:
		for _, c := range p.Choices {
			if c == v.s {
				return nil
			}
		}
		return fmt.Errorf("%w: property %q: %q is not one of %s", ErrInvalidValue, p.Name, v.s, strings.Join(p.Choices, ", "))
	}
	return nil
}

func typeName(t Type) string {
	if t == 0 {
		return "no value"
	}
	return t.String()
}

// Readings maps property names to values, as returned by Device.Read.
type Readings map[string]Value

// Device is an opened sensor or actuator. Implementations are safe for
// concurrent use.
type Device interface {
	// Properties lists the device's properties; the slice must not be
	// modified.
	Properties() []Property
	// Read returns every readable property. On error it returns no
	// readings: a value is either what the hardware reported or absent. A
	// property is also absent while the hardware has no value for it (a
	// servo never driven).
	Read(ctx context.Context) (Readings, error)
	// Write sets one writable property. Errors: ErrUnknownProperty,
	// ErrReadOnly, ErrInvalidValue, or the hardware's error.
	Write(ctx context.Context, property string, v Value) error
	// Close releases the lines the device opened (never a shared bus).
	Close() error
}

// Watcher is implemented by devices whose inputs change between reads
// (buttons, switches, motion sensors).
type Watcher interface {
	// Watch blocks, calling emit with fresh readings after every debounced
	// change, until ctx is done (it then returns ctx.Err()) or the hardware
	// fails. emit runs on the caller's goroutine and should not block long.
	Watch(ctx context.Context, emit func(Readings)) error
}

// Errors callers act on.
var (
	// ErrInvalidOptions: a driver's options are invalid (fix the config).
	ErrInvalidOptions = errors.New("devices: invalid options")
	// ErrUnknownDriver: no driver by that name in the registry.
	ErrUnknownDriver = errors.New("devices: unknown driver")
	// ErrUnknownProperty: the device has no property by that name.
	ErrUnknownProperty = errors.New("devices: unknown property")
	// ErrReadOnly: Write to a property that is not writable.
	ErrReadOnly = errors.New("devices: property is read-only")
	// ErrInvalidValue: wrong type, not finite, out of range or not a choice.
	ErrInvalidValue = errors.New("devices: invalid value")
	// ErrWrongChip: the chip at the address is not the one configured
	// (chip ID mismatch).
	ErrWrongChip = errors.New("devices: unexpected chip")
	// ErrChecksum: data from the chip failed its CRC (noise on the bus,
	// loose wiring); retrying may succeed.
	ErrChecksum = errors.New("devices: checksum mismatch")
	// ErrNotReady: the chip has no valid measurement (conversion still
	// running, sensor reports its power-on value, overflow).
	ErrNotReady = errors.New("devices: no valid measurement")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("devices: closed")
)

// FindProperty returns the property named name, or an error wrapping
// ErrUnknownProperty that lists the valid names.
func FindProperty(props []Property, name string) (Property, error) {
	for _, p := range props {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, len(props))
	for i, p := range props {
		names[i] = p.Name
	}
	return Property{}, fmt.Errorf("%w: %q (this device has: %s)", ErrUnknownProperty, name, strings.Join(names, ", "))
}

// CheckWrite finds the property, checks it is writable and that v is valid
// for it. Drivers call it first in Write.
func CheckWrite(props []Property, name string, v Value) (Property, error) {
	p, err := FindProperty(props, name)
	if err != nil {
		return p, err
	}
	if !p.Writable {
		return p, fmt.Errorf("%w: %q", ErrReadOnly, name)
	}
	return p, p.Check(v)
}

// Sleep waits for d or until ctx is done, whichever comes first; it returns
// ctx.Err() in the second case. Drivers use it for conversion times.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Invalidf returns an error wrapping ErrInvalidOptions; drivers' Validate
// methods use it so every message has the same shape.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
}
