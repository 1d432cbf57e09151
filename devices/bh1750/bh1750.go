// Package bh1750 drives the ROHM BH1750FVI ambient light sensor on I2C
// (driver "bh1750").
//
// This is our driver, not periph.io/x/devices/v3/bh1750, because that one
// (v3.7.4) sends the reset opcode where it means power on or power down
// (SetMode ignores its argument), does not halve the count in
// high-resolution mode 2 (so it reports twice the light), ignores the
// measurement-time register and sleeps without a context. Here each Read
// runs a one-time measurement (datasheet "Instruction set": 0x20/0x21/0x23;
// the chip powers itself down afterwards), waits the datasheet's maximum
// time scaled by MTreg, and converts with lx = count / 1.2 · 69/MTreg
// (halved in mode 2), the datasheet's example being 0x8390 → 28067 lx.
package bh1750

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/devices"
)

// Options configure a BH1750.
type Options struct {
	Bus string `yaml:"bus"`
	// Address is 0x23 (ADDR low) or 0x5C (ADDR high).
	Address uint16 `yaml:"address"`
	// Mode is "high" (1 lx, 120 ms), "high2" (0.5 lx, 120 ms) or "low"
	// (4 lx, 16 ms).
	Mode string `yaml:"mode"`
	// MTreg is the measurement time register, 31…254 (default 69): higher
	// is more sensitive and slower, for dim light or behind a window.
	MTreg int `yaml:"mtreg"`
}

// Defaults returns address 0x23, high resolution, MTreg 69.
func Defaults() Options { return Options{Address: 0x23, Mode: "high", MTreg: 69} }

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.Bus == "" {
		return devices.Invalidf("bus is required (an I2C bus such as 1)")
	}
	if o.Address != 0x23 && o.Address != 0x5C {
		return devices.Invalidf("address 0x%02x is not a BH1750 address: use 0x23 (ADDR low) or 0x5c (ADDR high)", o.Address)
	}
	if _, ok := modeFor(o.Mode); !ok {
		return devices.Invalidf("mode %q must be high, high2 or low", o.Mode)
	}
	if o.MTreg < 31 || o.MTreg > 254 {
		return devices.Invalidf("mtreg %d must be between 31 and 254 (default 69)", o.MTreg)
	}
	return nil
}

type mode struct {
	op      byte          // one-time measurement opcode
	maxTime time.Duration // at MTreg 69
	divisor float64       // counts per lx at MTreg 69
}

func modeFor(name string) (mode, bool) {
	switch name {
	case "high":
		return mode{0x20, 180 * time.Millisecond, 1.2}, true
	case "high2":
		return mode{0x21, 180 * time.Millisecond, 2.4}, true
	case "low":
		return mode{0x23, 24 * time.Millisecond, 1.2}, true
	}
	return mode{}, false
}

const (
	opPowerOn = 0x01
	opReset   = 0x07
)

// Driver returns the bh1750 driver.
func Driver() devices.Driver {
	return devices.Define("bh1750", "ROHM BH1750 ambient light sensor (I2C)", Defaults,
		func(o Options) []devices.Property { return properties(o) },
		func(ctx context.Context, env devices.Env, o Options) (devices.Device, error) {
			bus, err := env.I2C(ctx, o.Bus)
			if err != nil {
				return nil, err
			}
			return New(ctx, bus, o)
		})
}

func properties(o Options) []devices.Property {
	m, _ := modeFor(o.Mode)
	max := 65535 / m.divisor * 69 / float64(o.MTreg)
	return []devices.Property{{Name: "illuminance", Type: devices.TypeNumber, Unit: "lx",
		Range: &devices.Range{Min: 0, Max: math.Round(max*100) / 100}, Readable: true, Description: "ambient light"}}
}

// Dev is an opened BH1750.
type Dev struct {
	dev   i2c.Dev
	o     Options
	props []devices.Property
	mu    sync.Mutex
}

// New powers the chip on, resets its data register and sets MTreg. The
// BH1750 has no ID register: an ACK to these opcodes is all it says.
func New(ctx context.Context, bus i2c.Bus, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &Dev{dev: i2c.Dev{Bus: bus, Addr: o.Address}, o: o, props: properties(o)}
	for _, op := range []byte{opPowerOn, opReset, 0x40 | byte(o.MTreg>>5), 0x60 | byte(o.MTreg&0x1F)} {
		if err := d.dev.Tx([]byte{op}, nil); err != nil {
			return nil, d.errorf("opcode 0x%02x: %w", op, err)
		}
	}
	return d, nil
}

func (d *Dev) errorf(format string, args ...any) error {
	return fmt.Errorf("bh1750 at 0x%02x: %w", d.dev.Addr, fmt.Errorf(format, args...))
}

// Lux converts a result count as the datasheet does (p.7 and p.11).
func Lux(count uint16, mode string, mtreg int) float64 {
	m, _ := modeFor(mode)
	return float64(count) / m.divisor * 69 / float64(mtreg)
}

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Read implements devices.Device: one one-time measurement.
func (d *Dev) Read(ctx context.Context) (devices.Readings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, _ := modeFor(d.o.Mode)
	if err := d.dev.Tx([]byte{m.op}, nil); err != nil {
		return nil, d.errorf("start measurement: %w", err)
	}
	if err := devices.Sleep(ctx, m.maxTime*time.Duration(d.o.MTreg)/69); err != nil {
		return nil, err
	}
	var b [2]byte
	if err := d.dev.Tx(nil, b[:]); err != nil {
		return nil, d.errorf("read result: %w", err)
	}
	lx := Lux(uint16(b[0])<<8|uint16(b[1]), d.o.Mode, d.o.MTreg)
	return devices.Readings{"illuminance": devices.Number(math.Round(lx*100) / 100)}, nil
}

// Write implements devices.Device; a sensor has nothing writable.
func (d *Dev) Write(_ context.Context, prop string, v devices.Value) error {
	_, err := devices.CheckWrite(d.props, prop, v)
	return err
}

// Close implements devices.Device (one-time mode leaves the chip powered
// down).
func (d *Dev) Close() error { return nil }
