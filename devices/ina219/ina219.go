// Package ina219 drives the TI INA219 current and power monitor on I2C
// (driver "ina219"): bus voltage, current and power through a shunt.
//
// This is our driver, not periph.io/x/devices/v3/ina219, because that one
// (v3.7.4) replaces every bus error by a fixed message (a NACK can't be
// told from anything else), and hard-codes the 16 V bus range, so 24 V
// systems read wrong. Here: calibration per datasheet §8.5.1
// (Current_LSB = max_current/2^15, Cal = trunc(0.04096/(Current_LSB·R)),
// Power_LSB = 20·Current_LSB), the smallest PGA range that covers
// max_current·R, the bus range configurable (16/32 V), the math-overflow
// flag reported as an error, and the calibration re-written when a read
// finds it lost (power glitch).
package ina219

import (
	"context"
	"fmt"
	"math"
	"sync"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/devices"
)

// Options configure an INA219.
type Options struct {
	Bus string `yaml:"bus"`
	// Address is 0x40–0x4F (A1, A0 pins).
	Address uint16 `yaml:"address"`
	// ShuntOhms is the shunt resistor (0.1 Ω on most breakout boards).
	ShuntOhms float64 `yaml:"shunt_ohms"`
	// MaxCurrent in A is the largest current expected; it sets the
	// resolution (max_current/32768) and the PGA range.
	MaxCurrent float64 `yaml:"max_current"`
	// BusRange is the bus voltage full scale, 16 or 32 V.
	BusRange int `yaml:"bus_range"`
}

// Defaults returns address 0x40, 0.1 Ω, 3.2 A, 32 V (the chip's reset
// configuration on the common breakout board).
func Defaults() Options { return Options{Address: 0x40, ShuntOhms: 0.1, MaxCurrent: 3.2, BusRange: 32} }

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.Bus == "" {
		return devices.Invalidf("bus is required (an I2C bus such as 1)")
	}
	if o.Address < 0x40 || o.Address > 0x4F {
		return devices.Invalidf("address 0x%02x is not an INA219 address: use 0x40–0x4f", o.Address)
	}
	if !(o.ShuntOhms > 0 && o.ShuntOhms <= 100) {
		return devices.Invalidf("shunt_ohms %v must be above 0 and at most 100 Ω", o.ShuntOhms)
	}
	if !(o.MaxCurrent > 0 && o.MaxCurrent <= 1000) {
		return devices.Invalidf("max_current %v must be above 0 and at most 1000 A", o.MaxCurrent)
	}
	if o.BusRange != 16 && o.BusRange != 32 {
		return devices.Invalidf("bus_range %d must be 16 or 32 (V)", o.BusRange)
	}
	if v := o.MaxCurrent * o.ShuntOhms; v > 0.32+1e-9 {
		return devices.Invalidf("max_current %v A through shunt_ohms %v Ω drops %.0f mV, beyond the INA219's ±320 mV shunt range: use a smaller shunt or max_current", o.MaxCurrent, o.ShuntOhms, v*1000)
	}
	if c := o.calibration(); c < 1 || c > 0xFFFE {
		return devices.Invalidf("max_current %v A with shunt_ohms %v Ω gives calibration %d, outside 1…65534: raise or lower max_current", o.MaxCurrent, o.ShuntOhms, c)
	}
	return nil
}

// CurrentLSB returns the current register's resolution in A.
func (o Options) CurrentLSB() float64 { return o.MaxCurrent / 32768 }

// calibration is datasheet §8.5.1 equation 1.
func (o Options) calibration() int64 {
	return int64(math.Floor(0.04096 / (o.CurrentLSB() * o.ShuntOhms)))
}

// Config returns the configuration register: bus range, the smallest PGA
// covering max_current·shunt, 12-bit ADCs, continuous shunt and bus.
func (o Options) Config() uint16 {
	var pg uint16
	for pg = 0; pg < 3 && o.MaxCurrent*o.ShuntOhms > 0.04*float64(uint16(1)<<pg)+1e-9; pg++ {
	}
	cfg := pg<<11 | 0x3<<7 | 0x3<<3 | 0x7
	if o.BusRange == 32 {
		cfg |= 1 << 13
	}
	return cfg
}

// Driver returns the ina219 driver.
func Driver() devices.Driver {
	return devices.Define("ina219", "TI INA219 bus voltage, current and power monitor (I2C)", Defaults,
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
	return []devices.Property{
		{Name: "voltage", Type: devices.TypeNumber, Unit: "V", Range: &devices.Range{Min: 0, Max: float64(o.BusRange)}, Readable: true, Description: "bus voltage (IN− to GND)"},
		{Name: "current", Type: devices.TypeNumber, Unit: "A", Range: &devices.Range{Min: -o.MaxCurrent, Max: o.MaxCurrent}, Readable: true, Description: "current through the shunt"},
		{Name: "power", Type: devices.TypeNumber, Unit: "W", Range: &devices.Range{Min: 0, Max: o.MaxCurrent * float64(o.BusRange)}, Readable: true, Description: "power delivered to the load"},
	}
}

// Registers (datasheet §8.6).
const (
	regConfig  = 0x00
	regBus     = 0x02
	regPower   = 0x03
	regCurrent = 0x04
	regCal     = 0x05
)

// Dev is an opened INA219.
type Dev struct {
	dev   i2c.Dev
	o     Options
	props []devices.Property
	cfg   uint16
	cal   uint16
	mu    sync.Mutex
}

// New resets the chip, writes configuration and calibration and checks
// they read back.
func New(ctx context.Context, bus i2c.Bus, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &Dev{dev: i2c.Dev{Bus: bus, Addr: o.Address}, o: o, props: properties(o), cfg: o.Config(), cal: uint16(o.calibration()) &^ 1}
	if err := d.write(regConfig, 0x8000); err != nil {
		return nil, d.errorf("reset: %w", err)
	}
	if err := d.init(); err != nil {
		return nil, err
	}
	got, err := d.read(regConfig)
	if err != nil {
		return nil, d.errorf("read configuration: %w", err)
	}
	if got != d.cfg {
		return nil, d.errorf("%w: wrote configuration 0x%04x, read back 0x%04x: not an INA219?", devices.ErrWrongChip, d.cfg, got)
	}
	return d, nil
}

func (d *Dev) init() error {
	if err := d.write(regConfig, d.cfg); err != nil {
		return d.errorf("write configuration: %w", err)
	}
	if err := d.write(regCal, d.cal); err != nil {
		return d.errorf("write calibration: %w", err)
	}
	return nil
}

func (d *Dev) errorf(format string, args ...any) error {
	return fmt.Errorf("ina219 at 0x%02x: %w", d.dev.Addr, fmt.Errorf(format, args...))
}

func (d *Dev) write(reg byte, v uint16) error {
	return d.dev.Tx([]byte{reg, byte(v >> 8), byte(v)}, nil)
}

func (d *Dev) read(reg byte) (uint16, error) {
	var b [2]byte
	if err := d.dev.Tx([]byte{reg}, b[:]); err != nil {
		return 0, err
	}
	return uint16(b[0])<<8 | uint16(b[1]), nil
}

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Read implements devices.Device.
func (d *Dev) Read(context.Context) (devices.Readings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cal, err := d.read(regCal)
	if err != nil {
		return nil, d.errorf("read calibration: %w", err)
	}
	if cal != d.cal {
		// Reset since we configured it: current and power would read 0.
		if err := d.init(); err != nil {
			return nil, err
		}
	}
	var regs [3]uint16
	for i, reg := range []byte{regBus, regCurrent, regPower} {
		if regs[i], err = d.read(reg); err != nil {
			return nil, d.errorf("read register %d: %w", reg, err)
		}
	}
	if regs[0]&1 != 0 {
		return nil, d.errorf("%w: math overflow: the current exceeds max_current %v A or the shunt range", devices.ErrNotReady, d.o.MaxCurrent)
	}
	// The calibration register holds a truncated value, so the current LSB
	// the chip really applies is 0.04096/(Cal·R), not the nominal
	// max_current/32768; using it removes up to 0.05 % of gain error.
	lsb := 0.04096 / (float64(d.cal) * d.o.ShuntOhms)
	return devices.Readings{
		"voltage": devices.Number(round(float64(regs[0]>>3)*0.004, 1e-3)),
		"current": devices.Number(round(float64(int16(regs[1]))*lsb, 1e-6)),
		"power":   devices.Number(round(float64(regs[2])*20*lsb, 1e-6)),
	}, nil
}

func round(x, step float64) float64 { return math.Round(x/step) * step }

// Write implements devices.Device; a monitor has nothing writable.
func (d *Dev) Write(_ context.Context, prop string, v devices.Value) error {
	_, err := devices.CheckWrite(d.props, prop, v)
	return err
}

// Close implements devices.Device.
func (d *Dev) Close() error { return nil }
