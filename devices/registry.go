package devices

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/hal"
)

// Options is a driver's plain options struct (a pointer to it). Validate
// needs no hardware and returns errors wrapping ErrInvalidOptions.
type Options interface {
	Validate() error
}

// Lines opens GPIO lines and PWM channels by name; hal.HAL satisfies it.
// Devices close what they open.
type Lines interface {
	OpenOutput(ctx context.Context, name string, cfg hal.OutputConfig) (hal.DigitalOut, error)
	OpenInput(ctx context.Context, name string, cfg hal.InputConfig) (hal.DigitalIn, error)
	OpenPWM(ctx context.Context, name string) (hal.PWMOut, error)
}

// Buses hands out I2C buses by name. A bus is shared by every device on it:
// devices never close it (see SharedBuses).
type Buses interface {
	Bus(ctx context.Context, name string) (i2c.Bus, error)
}

// Env is what Driver.Open may use to reach hardware. Fields a driver does
// not need may be nil.
type Env struct {
	Lines Lines
	Buses Buses
	// SysRoot is prefixed to /sys paths by the Linux sysfs drivers
	// (ds18b20, cpu_temp); "" means the real root. Tests and simulation
	// point it at a directory tree.
	SysRoot string
}

// Driver describes one kind of device. Build it with Define.
type Driver struct {
	// Name is the registry key ("relay", "bme280", …).
	Name string
	// Summary is one line for docs and `agent` help output.
	Summary string

	newOptions func() Options
	props      func(Options) ([]Property, error)
	open       func(context.Context, Env, Options) (Device, error)
}

// Define builds a Driver from typed functions: defaults returns the
// driver's options with default values, props the properties a device with
// those options has, open the device itself. O is the options struct; the
// Driver hands out and accepts *O.
func Define[O any, PO interface {
	*O
	Options
}](name, summary string, defaults func() O, props func(O) []Property, open func(context.Context, Env, O) (Device, error)) Driver {
	cast := func(o Options) (O, error) {
		p, ok := o.(PO)
		if !ok || p == nil {
			var zero O
			return zero, fmt.Errorf("%w: driver %q takes %T, got %T", ErrInvalidOptions, name, PO(nil), o)
		}
		if err := p.Validate(); err != nil {
			return *p, fmt.Errorf("driver %q: %w", name, err)
		}
		return *p, nil
	}
	return Driver{
		Name:    name,
		Summary: summary,
		newOptions: func() Options {
			o := defaults()
			return PO(&o)
		},
		props: func(o Options) ([]Property, error) {
			v, err := cast(o)
			if err != nil {
				return nil, err
			}
			return props(v), nil
		},
		open: func(ctx context.Context, env Env, o Options) (Device, error) {
			v, err := cast(o)
			if err != nil {
				return nil, err
			}
			// Drivers' errors already name the chip and address (or the
			// HAL the line); the caller adds which configured device it was.
			return open(ctx, env, v)
		},
	}
}

// NewOptions returns a fresh options value (a pointer to the driver's
// options struct) holding the defaults; decode the config into it.
func (d Driver) NewOptions() Options { return d.newOptions() }

// Properties validates opts and returns the properties a device opened with
// them will have, without touching hardware.
func (d Driver) Properties(opts Options) ([]Property, error) { return d.props(opts) }

// Open validates opts and opens the device.
func (d Driver) Open(ctx context.Context, env Env, opts Options) (Device, error) {
	return d.open(ctx, env, opts)
}

// Registry holds drivers by name. Build it with NewRegistry; it is not
// modified after that, so it is safe for concurrent use.
type Registry struct {
	drivers map[string]Driver
}

// NewRegistry returns a registry of the given drivers. Duplicate or empty
// names and drivers not built with Define are errors.
func NewRegistry(drivers ...Driver) (*Registry, error) {
	r := &Registry{drivers: make(map[string]Driver, len(drivers))}
	for _, d := range drivers {
		if d.Name == "" || d.open == nil {
			return nil, errors.New("devices: driver without a name or not built with Define")
		}
		if _, dup := r.drivers[d.Name]; dup {
			return nil, fmt.Errorf("devices: driver %q registered twice", d.Name)
		}
		r.drivers[d.Name] = d
	}
	return r, nil
}

// Lookup returns the driver named name, or an error wrapping
// ErrUnknownDriver that lists the known names.
func (r *Registry) Lookup(name string) (Driver, error) {
	d, ok := r.drivers[name]
	if !ok {
		return Driver{}, fmt.Errorf("%w: %q (known: %s)", ErrUnknownDriver, name, strings.Join(r.Names(), ", "))
	}
	return d, nil
}

// Names returns the driver names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.drivers))
	for n := range r.drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open looks the driver up and opens a device with opts.
func (r *Registry) Open(ctx context.Context, driver string, env Env, opts Options) (Device, error) {
	d, err := r.Lookup(driver)
	if err != nil {
		return nil, err
	}
	return d.Open(ctx, env, opts)
}

// BusOpener opens I2C buses; hal.HAL satisfies it.
type BusOpener interface {
	OpenI2C(ctx context.Context, bus string) (hal.I2CBus, error)
}

// SharedBuses implements Buses on a BusOpener: each bus is opened once, on
// first use, and closed by Close. Safe for concurrent use.
type SharedBuses struct {
	opener BusOpener

	mu     sync.Mutex
	buses  map[string]hal.I2CBus
	closed bool
}

// NewSharedBuses returns a SharedBuses opening buses through o.
func NewSharedBuses(o BusOpener) *SharedBuses {
	return &SharedBuses{opener: o, buses: map[string]hal.I2CBus{}}
}

// Bus returns the bus named name, opening it on first use.
func (s *SharedBuses) Bus(ctx context.Context, name string) (i2c.Bus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("i2c bus %q: %w", name, ErrClosed)
	}
	if b, ok := s.buses[name]; ok {
		return b, nil
	}
	b, err := s.opener.OpenI2C(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open i2c bus %q: %w", name, err)
	}
	s.buses[name] = b
	return b, nil
}

// Close closes every bus opened; Bus fails afterwards.
func (s *SharedBuses) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var errs []error
	for name, b := range s.buses {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close i2c bus %q: %w", name, err))
		}
	}
	s.buses = nil
	return errors.Join(errs...)
}

// I2C returns the bus named name from e.Buses.
func (e Env) I2C(ctx context.Context, name string) (i2c.Bus, error) {
	if e.Buses == nil {
		return nil, fmt.Errorf("i2c bus %q: this environment has no I2C buses (Env.Buses is nil)", name)
	}
	return e.Buses.Bus(ctx, name)
}

// OpenOutput opens an output line through e.Lines.
func (e Env) OpenOutput(ctx context.Context, name string, cfg hal.OutputConfig) (hal.DigitalOut, error) {
	if e.Lines == nil {
		return nil, fmt.Errorf("output %q: this environment has no GPIO lines (Env.Lines is nil)", name)
	}
	return e.Lines.OpenOutput(ctx, name, cfg)
}

// OpenInput opens an input line through e.Lines.
func (e Env) OpenInput(ctx context.Context, name string, cfg hal.InputConfig) (hal.DigitalIn, error) {
	if e.Lines == nil {
		return nil, fmt.Errorf("input %q: this environment has no GPIO lines (Env.Lines is nil)", name)
	}
	return e.Lines.OpenInput(ctx, name, cfg)
}

// OpenPWM opens a PWM channel through e.Lines.
func (e Env) OpenPWM(ctx context.Context, name string) (hal.PWMOut, error) {
	if e.Lines == nil {
		return nil, fmt.Errorf("pwm %q: this environment has no PWM channels (Env.Lines is nil)", name)
	}
	return e.Lines.OpenPWM(ctx, name)
}
