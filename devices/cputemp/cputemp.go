// Package cputemp reads the SoC temperature from the Linux thermal sysfs
// (driver "cpu_temp"): /sys/class/thermal/thermal_zone<N>/temp, in
// millidegrees Celsius. It needs no wiring, so it works on every board and
// is a good first device. The root is injectable (devices.Env.SysRoot).
package cputemp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
)

// Options configure the CPU thermometer.
type Options struct {
	// Zone is the thermal zone number (0: the SoC on a Raspberry Pi).
	Zone int `yaml:"zone"`
}

// Defaults returns zone 0.
func Defaults() Options { return Options{} }

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.Zone < 0 || o.Zone > 255 {
		return devices.Invalidf("zone %d must be between 0 and 255 (see /sys/class/thermal)", o.Zone)
	}
	return nil
}

// Driver returns the cpu_temp driver.
func Driver() devices.Driver {
	return devices.Define("cpu_temp", "SoC temperature from /sys/class/thermal (no wiring)", Defaults,
		func(Options) []devices.Property { return properties() },
		func(ctx context.Context, env devices.Env, o Options) (devices.Device, error) {
			return New(ctx, env.SysRoot, o)
		})
}

// properties returns a fresh slice per device: callers may not modify
// it, but a shared package-level one would turn a mistake into a global one.
func properties() []devices.Property {
	return []devices.Property{{Name: "temperature", Type: devices.TypeNumber, Unit: "°C",
		Range: &devices.Range{Min: -40, Max: 125}, Readable: true, Description: "SoC temperature"}}
}

// Dev is an opened thermal zone.
type Dev struct {
	path  string
	props []devices.Property
}

// New checks the zone exists under root (which stands for "/").
func New(ctx context.Context, root string, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &Dev{props: properties(), path: filepath.Join(root, "/sys/class/thermal", "thermal_zone"+strconv.Itoa(o.Zone), "temp")}
	if _, err := os.Stat(d.path); err != nil {
		return nil, fmt.Errorf("cpu_temp: thermal zone %d: %w (%v)", o.Zone, hal.ErrNotFound, err)
	}
	return d, nil
}

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Read implements devices.Device.
func (d *Dev) Read(ctx context.Context) (devices.Readings, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.path)
	if err != nil {
		return nil, fmt.Errorf("cpu_temp: %w", err)
	}
	milli, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("cpu_temp: %s holds %q, not millidegrees", d.path, strings.TrimSpace(string(b)))
	}
	return devices.Readings{"temperature": devices.Number(float64(milli) / 1000)}, nil
}

// Write implements devices.Device; nothing is writable.
func (d *Dev) Write(_ context.Context, prop string, v devices.Value) error {
	_, err := devices.CheckWrite(d.props, prop, v)
	return err
}

// Close implements devices.Device.
func (d *Dev) Close() error { return nil }
