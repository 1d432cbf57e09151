// Package gpio holds the devices on single GPIO lines: outputs (relay, led)
// and inputs (button, switch, pir). Active-low wiring, pull bias and
// debounce are applied by the HAL line (hal.OutputConfig, hal.InputConfig);
// this package gives them properties.
//
// An output's value is the level last set through the HAL (never read back
// from the line: periph turns a read output into an input, see package
// hal). Inputs implement devices.Watcher so presses between sensor ticks
// are reported.
//
// To add a device on one line with a new meaning (say a "door" contact),
// add a Driver in Drivers built with inputDriver or outputDriver and the
// property name it reports.
package gpio

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
)

// OutputOptions configure a relay or LED.
type OutputOptions struct {
	// Pin is the HAL line name ("GPIO17", "gpiochip0/17").
	Pin string `yaml:"pin"`
	// ActiveLow: the device is on when the line is low (most relay boards).
	ActiveLow bool `yaml:"active_low"`
	// Initial is the logical state applied at open, glitch-free.
	Initial bool `yaml:"initial"`
}

// WithInitial returns a copy of o that opens the output at the logical
// state on, so a restarted agent opens a relay at the level it should
// have instead of toggling it.
func (o *OutputOptions) WithInitial(on bool) devices.Options {
	c := *o
	c.Initial = on
	return &c
}

// Validate implements devices.Options.
func (o *OutputOptions) Validate() error {
	if o.Pin == "" {
		return devices.Invalidf("pin is required (a line name such as GPIO17 or gpiochip0/17)")
	}
	return nil
}

// InputOptions configure a button, switch or PIR sensor.
type InputOptions struct {
	Pin string `yaml:"pin"`
	// ActiveLow: the input is "on" when the line is low (a button to
	// ground with a pull-up).
	ActiveLow bool `yaml:"active_low"`
	// Pull is "up", "down" or "none".
	Pull string `yaml:"pull"`
	// Debounce suppresses edges closer than this to the previous one.
	Debounce time.Duration `yaml:"debounce"`
}

// MaxDebounce bounds InputOptions.Debounce: longer values hide real
// presses and usually mean a unit mistake ("20" read as 20 s).
const MaxDebounce = 5 * time.Second

// Validate implements devices.Options.
func (o *InputOptions) Validate() error {
	if o.Pin == "" {
		return devices.Invalidf("pin is required (a line name such as GPIO17 or gpiochip0/17)")
	}
	if _, err := parsePull(o.Pull); err != nil {
		return err
	}
	if o.Debounce < 0 || o.Debounce > MaxDebounce {
		return devices.Invalidf("debounce %v must be between 0 and %v", o.Debounce, MaxDebounce)
	}
	return nil
}

func parsePull(s string) (hal.Pull, error) {
	switch s {
	case "up":
		return hal.PullUp, nil
	case "down":
		return hal.PullDown, nil
	case "none", "":
		return hal.PullNone, nil
	}
	return 0, devices.Invalidf("pull %q must be up, down or none", s)
}

// InputConfig returns the HAL configuration for these options (both edges,
// so Watch sees presses and releases).
func (o InputOptions) InputConfig() hal.InputConfig {
	pull, _ := parsePull(o.Pull)
	return hal.InputConfig{ActiveLow: o.ActiveLow, Pull: pull, Edge: hal.EdgeBoth, Debounce: o.Debounce}
}

// Drivers returns the relay, led, button, switch and pir drivers.
func Drivers() []devices.Driver {
	return []devices.Driver{
		outputDriver("relay", "relay on a GPIO line (property on)", "on"),
		outputDriver("led", "LED on a GPIO line (property on)", "on"),
		inputDriver("button", "push button on a GPIO line (property pressed)", "pressed",
			InputOptions{ActiveLow: true, Pull: "up", Debounce: 20 * time.Millisecond}),
		inputDriver("switch", "switch or contact on a GPIO line (property on)", "on",
			InputOptions{ActiveLow: true, Pull: "up", Debounce: 20 * time.Millisecond}),
		inputDriver("pir", "PIR motion sensor output on a GPIO line (property motion)", "motion",
			InputOptions{Pull: "none"}),
	}
}

func outputDriver(name, summary, prop string) devices.Driver {
	return devices.Define(name, summary,
		func() OutputOptions { return OutputOptions{} },
		func(OutputOptions) []devices.Property { return outputProps(prop) },
		func(ctx context.Context, env devices.Env, o OutputOptions) (devices.Device, error) {
			out, err := env.OpenOutput(ctx, o.Pin, hal.OutputConfig{ActiveLow: o.ActiveLow, Initial: hal.Level(o.Initial)})
			if err != nil {
				return nil, err
			}
			return NewOutput(out, prop), nil
		})
}

func inputDriver(name, summary, prop string, defaults InputOptions) devices.Driver {
	return devices.Define(name, summary,
		func() InputOptions { return defaults },
		func(InputOptions) []devices.Property { return inputProps(prop) },
		func(ctx context.Context, env devices.Env, o InputOptions) (devices.Device, error) {
			in, err := env.OpenInput(ctx, o.Pin, o.InputConfig())
			if err != nil {
				return nil, err
			}
			return NewInput(in, prop), nil
		})
}

func outputProps(prop string) []devices.Property {
	return []devices.Property{{Name: prop, Type: devices.TypeBool, Readable: true, Writable: true,
		Description: "output state (logical, after active-low)"}}
}

func inputProps(prop string) []devices.Property {
	return []devices.Property{{Name: prop, Type: devices.TypeBool, Readable: true,
		Description: "input state (logical, after active-low)"}}
}

// Output is a device on one output line.
type Output struct {
	out   hal.DigitalOut
	prop  string
	props []devices.Property
	mu    sync.Mutex // orders Set calls so Level matches the last write
}

// NewOutput returns an output device on an opened line; its one bool
// property is called prop. The device owns the line (Close closes it).
func NewOutput(out hal.DigitalOut, prop string) *Output {
	return &Output{out: out, prop: prop, props: outputProps(prop)}
}

// Properties implements devices.Device.
func (d *Output) Properties() []devices.Property { return d.props }

// Read implements devices.Device: the level last set.
func (d *Output) Read(context.Context) (devices.Readings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return devices.Readings{d.prop: devices.Bool(d.out.Level() == hal.High)}, nil
}

// Write implements devices.Device.
func (d *Output) Write(ctx context.Context, prop string, v devices.Value) error {
	if _, err := devices.CheckWrite(d.props, prop, v); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.out.Set(ctx, hal.Level(v.Bool())); err != nil {
		return fmt.Errorf("set %s to %v: %w", d.out.Name(), v.Bool(), err)
	}
	return nil
}

// Close implements devices.Device.
func (d *Output) Close() error { return d.out.Close() }

// Input is a device on one input line.
type Input struct {
	in    hal.DigitalIn
	prop  string
	props []devices.Property
}

// NewInput returns an input device on an opened line; its one read-only
// bool property is called prop. The device owns the line.
func NewInput(in hal.DigitalIn, prop string) *Input {
	return &Input{in: in, prop: prop, props: inputProps(prop)}
}

// Properties implements devices.Device.
func (d *Input) Properties() []devices.Property { return d.props }

// Read implements devices.Device: the current logical level.
func (d *Input) Read(ctx context.Context) (devices.Readings, error) {
	l, err := d.in.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.in.Name(), err)
	}
	return devices.Readings{d.prop: devices.Bool(l == hal.High)}, nil
}

// Write implements devices.Device; inputs have nothing writable.
func (d *Input) Write(_ context.Context, prop string, v devices.Value) error {
	_, err := devices.CheckWrite(d.props, prop, v)
	return err
}

// Watch implements devices.Watcher: it reports every debounced edge.
func (d *Input) Watch(ctx context.Context, emit func(devices.Readings)) error {
	for {
		ev, err := d.in.WaitForEdge(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("watch %s: %w", d.in.Name(), err)
		}
		emit(devices.Readings{d.prop: devices.Bool(ev.Level == hal.High)})
	}
}

// Close implements devices.Device.
func (d *Input) Close() error { return d.in.Close() }
