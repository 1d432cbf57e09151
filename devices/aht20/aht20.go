// Package aht20 drives the Aosong AHT20 temperature and humidity sensor on
// I2C (driver "aht20") by wrapping periph.io/x/devices/v3/aht20, which
// fits: it takes a plain i2c.Bus, checks the CRC, bounds its busy-wait
// with a timeout and starts no goroutine unless asked to sense
// continuously (we never do). Its one limit: Sense sleeps the datasheet's
// 80 ms without a context, so Read honours cancellation only before the
// measurement starts.
//
// periph's typed errors are mapped to ours: a CRC mismatch to
// devices.ErrChecksum, a measurement still busy after the timeout to
// hal.ErrTimeout, an uncalibrated chip to devices.ErrNotReady.
package aht20

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	periph "periph.io/x/devices/v3/aht20"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
)

// Address is the AHT20's only I2C address.
const Address = 0x38

// Options configure an AHT20.
type Options struct {
	Bus string `yaml:"bus"`
	// Address must be 0x38 (fixed in the chip); it is here so configs
	// state it like every other I2C device.
	Address uint16 `yaml:"address"`
}

// Defaults returns address 0x38.
func Defaults() Options { return Options{Address: Address} }

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.Bus == "" {
		return devices.Invalidf("bus is required (an I2C bus such as 1)")
	}
	if o.Address != Address {
		return devices.Invalidf("address 0x%02x: the AHT20's address is fixed at 0x38", o.Address)
	}
	return nil
}

// Driver returns the aht20 driver.
func Driver() devices.Driver {
	return devices.Define("aht20", "Aosong AHT20 temperature and humidity sensor (I2C, periph.io driver)", Defaults,
		func(Options) []devices.Property { return properties() },
		func(ctx context.Context, env devices.Env, o Options) (devices.Device, error) {
			bus, err := env.I2C(ctx, o.Bus)
			if err != nil {
				return nil, err
			}
			return New(ctx, bus, o)
		})
}

// properties returns a fresh slice per device: callers may not modify
// it, but a shared package-level one would turn a mistake into a global one.
func properties() []devices.Property {
	return []devices.Property{
		{Name: "temperature", Type: devices.TypeNumber, Unit: "°C", Range: &devices.Range{Min: -40, Max: 85}, Readable: true, Description: "air temperature"},
		{Name: "humidity", Type: devices.TypeNumber, Unit: "%RH", Range: &devices.Range{Min: 0, Max: 100}, Readable: true, Description: "relative humidity"},
	}
}

// Dev is an opened AHT20.
type Dev struct {
	d     *periph.Dev
	props []devices.Property
	mu    sync.Mutex
}

// New reads the chip's status, calibrates it if needed (0xBE) and returns
// the device. The bus stays the caller's.
func New(ctx context.Context, bus i2c.Bus, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := periph.NewI2C(bus, &periph.Opts{
		MeasurementReadTimeout:  150 * time.Millisecond,
		MeasurementWaitInterval: 10 * time.Millisecond,
		ValidateData:            true,
	})
	if err != nil {
		return nil, fmt.Errorf("aht20 at 0x38: %w", mapErr(err))
	}
	return &Dev{d: d, props: properties()}, nil
}

func mapErr(err error) error {
	var crc *periph.DataCorruptionError
	var timeout *periph.ReadTimeoutError
	var notInit *periph.NotInitializedError
	switch {
	case errors.As(err, &crc):
		return fmt.Errorf("%w: %v", devices.ErrChecksum, err)
	case errors.As(err, &timeout):
		return fmt.Errorf("%w: %v", hal.ErrTimeout, err)
	case errors.As(err, &notInit):
		return fmt.Errorf("%w: %v (not calibrated)", devices.ErrNotReady, err)
	}
	return err
}

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Read implements devices.Device: one triggered measurement (≥ 80 ms).
func (d *Dev) Read(ctx context.Context) (devices.Readings, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var e physic.Env
	if err := d.d.Sense(&e); err != nil {
		return nil, fmt.Errorf("aht20 at 0x38: %w", mapErr(err))
	}
	return devices.Readings{
		"temperature": devices.Number(math.Round(e.Temperature.Celsius()*100) / 100),
		"humidity":    devices.Number(math.Round(float64(e.Humidity)/float64(physic.PercentRH)*100) / 100),
	}, nil
}

// Write implements devices.Device; a sensor has nothing writable.
func (d *Dev) Write(_ context.Context, prop string, v devices.Value) error {
	_, err := devices.CheckWrite(d.props, prop, v)
	return err
}

// Close implements devices.Device.
func (d *Dev) Close() error { return nil }
