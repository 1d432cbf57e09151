// Package ds18b20 reads Maxim DS18B20 (and other w1_therm family) 1-wire
// thermometers through the Linux kernel's 1-wire sysfs (driver
// "ds18b20"): /sys/bus/w1/devices/28-xxxxxxxxxxxx/w1_slave, or the
// newer "temperature" attribute when w1_slave is absent. The root is
// injectable (devices.Env.SysRoot) for tests and simulation.
//
// periph.io's ds18b20 talks to a onewire.Bus it bit-bangs or gets from a
// DS248x bridge; on a Raspberry Pi the kernel's w1-gpio overlay owns the
// line, so this reads sysfs instead. Checks beyond the kernel's: a
// scratchpad of all zeros (sensor gone, data line stuck low, which the
// kernel's CRC accepts) and the 85 °C power-on value with its reset
// scratchpad (the conversion never ran: usually parasite power) are
// reported as devices.ErrNotReady, not as temperatures.
//
// A kernel read blocks during the conversion (up to 750 ms at 12 bits)
// and cannot be interrupted: Read honours its context only before it.
package ds18b20

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
)

// Options configure a 1-wire thermometer.
type Options struct {
	// ID is the kernel's device name, family-serial ("28-0316a2792aff").
	// Empty picks the only thermometer present (an error if there are
	// several: name the one you mean).
	ID string `yaml:"id"`
}

// Defaults returns empty options (the only thermometer).
func Defaults() Options { return Options{} }

// idPattern: w1_therm families DS18S20 (10), DS1822 (22), DS18B20 (28),
// DS1825 (3b), DS28EA00 (42), then the 48-bit serial.
var idPattern = regexp.MustCompile(`^(10|22|28|3b|42)-[0-9a-f]{12}$`)

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.ID != "" && !idPattern.MatchString(o.ID) {
		return devices.Invalidf("id %q is not a 1-wire thermometer name like 28-0316a2792aff (family 10, 22, 28, 3b or 42, then 12 hex digits, lower case)", o.ID)
	}
	return nil
}

// Dir is the kernel's 1-wire devices directory.
const Dir = "/sys/bus/w1/devices"

// Driver returns the ds18b20 driver.
func Driver() devices.Driver {
	return devices.Define("ds18b20", "DS18B20 1-wire thermometer through the kernel's w1 sysfs", Defaults,
		func(Options) []devices.Property { return properties() },
		func(ctx context.Context, env devices.Env, o Options) (devices.Device, error) {
			return New(ctx, env.SysRoot, o)
		})
}

// properties returns a fresh slice per device: callers may not modify
// it, but a shared package-level one would turn a mistake into a global one.
func properties() []devices.Property {
	return []devices.Property{{Name: "temperature", Type: devices.TypeNumber, Unit: "°C",
		Range: &devices.Range{Min: -55, Max: 125}, Readable: true, Description: "temperature at the probe"}}
}

// Dev is an opened thermometer.
type Dev struct {
	id    string
	dir   string
	props []devices.Property
}

// New finds the thermometer under root (which stands for "/").
func New(ctx context.Context, root string, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	base := filepath.Join(root, Dir)
	id := o.ID
	if id == "" {
		ids, err := List(root)
		if err != nil {
			return nil, err
		}
		switch len(ids) {
		case 0:
			return nil, fmt.Errorf("no 1-wire thermometer in %s (is dtoverlay=w1-gpio set and the sensor wired with its pull-up?): %w", base, hal.ErrNotFound)
		case 1:
			id = ids[0]
		default:
			return nil, devices.Invalidf("several 1-wire thermometers (%s): set id to one of them", strings.Join(ids, ", "))
		}
	}
	d := &Dev{id: id, dir: filepath.Join(base, id), props: properties()}
	if _, err := os.Stat(d.dir); err != nil {
		return nil, fmt.Errorf("1-wire thermometer %s: %w (%v)", id, hal.ErrNotFound, err)
	}
	return d, nil
}

// List returns the thermometers the kernel sees under root, sorted.
func List(root string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, Dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list 1-wire devices: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if idPattern.MatchString(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Read implements devices.Device.
func (d *Dev) Read(ctx context.Context) (devices.Readings, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := d.read()
	if err != nil {
		return nil, fmt.Errorf("ds18b20 %s: %w", d.id, err)
	}
	return devices.Readings{"temperature": devices.Number(c)}, nil
}

func (d *Dev) read() (float64, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, "w1_slave"))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(d.dir, "temperature"))
		if err != nil {
			return 0, fmt.Errorf("read temperature: %w", err)
		}
		milli, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return 0, fmt.Errorf("temperature file holds %q, not millidegrees", strings.TrimSpace(string(b)))
		}
		return float64(milli) / 1000, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read w1_slave: %w", err)
	}
	return ParseW1Slave(string(b))
}

// ParseW1Slave parses the kernel's w1_slave text:
//
//	72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
//	72 01 4b 46 7f ff 0e 10 57 t=23125
func ParseW1Slave(s string) (float64, error) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) != 2 {
		return 0, fmt.Errorf("w1_slave has %d lines, want 2: %q", len(lines), s)
	}
	if !strings.HasSuffix(strings.TrimSpace(lines[0]), "YES") {
		return 0, fmt.Errorf("%w: the kernel's scratchpad CRC check failed: %q", devices.ErrChecksum, lines[0])
	}
	i := strings.LastIndex(lines[1], "t=")
	if i < 0 {
		return 0, fmt.Errorf("w1_slave has no t= value: %q", lines[1])
	}
	milli, err := strconv.Atoi(strings.TrimSpace(lines[1][i+2:]))
	if err != nil {
		return 0, fmt.Errorf("w1_slave t= value %q is not a number", lines[1][i+2:])
	}
	scratch := strings.Fields(lines[1][:i])
	if strings.Join(scratch, "") == "000000000000000000" {
		return 0, fmt.Errorf("%w: scratchpad is all zeros (sensor missing or data line held low)", devices.ErrNotReady)
	}
	if milli == 85000 && len(scratch) >= 2 && scratch[0] == "50" && scratch[1] == "05" {
		return 0, fmt.Errorf("%w: 85 °C with the power-on scratchpad: the conversion did not run (check power, parasite mode)", devices.ErrNotReady)
	}
	return float64(milli) / 1000, nil
}

// Write implements devices.Device; a thermometer has nothing writable.
func (d *Dev) Write(_ context.Context, prop string, v devices.Value) error {
	_, err := devices.CheckWrite(d.props, prop, v)
	return err
}

// Close implements devices.Device.
func (d *Dev) Close() error { return nil }
