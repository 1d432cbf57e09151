// Package sht3x drives Sensirion SHT30/31/35 temperature and humidity
// sensors on I2C (driver "sht3x"). periph.io has no SHT3x driver, so this is
// ours: single-shot measurements without clock stretching (datasheet
// §4.3, table 9), the Sensirion CRC-8 (poly 0x31, init 0xFF, §4.12)
// checked on every word, and the conversion formulas of §4.13.
package sht3x

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/devices"
)

// Options configure an SHT3x.
type Options struct {
	Bus string `yaml:"bus"`
	// Address is 0x44 (ADDR to GND) or 0x45 (ADDR to VDD).
	Address uint16 `yaml:"address"`
	// Repeatability is "high", "medium" or "low" (noise vs measurement
	// time: 15, 6 or 4 ms).
	Repeatability string `yaml:"repeatability"`
}

// Defaults returns address 0x44, high repeatability.
func Defaults() Options { return Options{Address: 0x44, Repeatability: "high"} }

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.Bus == "" {
		return devices.Invalidf("bus is required (an I2C bus such as 1)")
	}
	if o.Address != 0x44 && o.Address != 0x45 {
		return devices.Invalidf("address 0x%02x is not an SHT3x address: use 0x44 (ADDR low) or 0x45 (ADDR high)", o.Address)
	}
	if _, ok := singleShot(o.Repeatability); !ok {
		return devices.Invalidf("repeatability %q must be high, medium or low", o.Repeatability)
	}
	return nil
}

type command struct {
	cmd  [2]byte
	wait time.Duration
}

// singleShot returns the single-shot command without clock stretching for
// a repeatability and its maximum duration (datasheet tables 4 and 9).
func singleShot(repeatability string) (command, bool) {
	switch repeatability {
	case "high":
		return command{[2]byte{0x24, 0x00}, 16 * time.Millisecond}, true
	case "medium":
		return command{[2]byte{0x24, 0x0B}, 7 * time.Millisecond}, true
	case "low":
		return command{[2]byte{0x24, 0x16}, 5 * time.Millisecond}, true
	}
	return command{}, false
}

// Driver returns the sht3x driver.
func Driver() devices.Driver {
	return devices.Define("sht3x", "Sensirion SHT3x temperature and humidity sensor (I2C)", Defaults,
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
		{Name: "temperature", Type: devices.TypeNumber, Unit: "°C", Range: &devices.Range{Min: -40, Max: 125}, Readable: true, Description: "air temperature"},
		{Name: "humidity", Type: devices.TypeNumber, Unit: "%RH", Range: &devices.Range{Min: 0, Max: 100}, Readable: true, Description: "relative humidity"},
	}
}

// Dev is an opened SHT3x.
type Dev struct {
	dev   i2c.Dev
	cmd   [2]byte
	wait  time.Duration
	props []devices.Property
	mu    sync.Mutex
}

// New checks the chip answers its status command with a valid CRC and
// returns the device. The bus stays the caller's.
func New(ctx context.Context, bus i2c.Bus, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c, _ := singleShot(o.Repeatability)
	d := &Dev{dev: i2c.Dev{Bus: bus, Addr: o.Address}, cmd: c.cmd, wait: c.wait, props: properties()}
	// Read Status (0xF32D, §4.11): the SHT3x has no ID register; a status
	// word with a valid Sensirion CRC is the best identity check there is.
	var st [3]byte
	if err := d.dev.Tx([]byte{0xF3, 0x2D}, nil); err != nil {
		return nil, d.errorf("read status: %w", err)
	}
	if err := d.dev.Tx(nil, st[:]); err != nil {
		return nil, d.errorf("read status: %w", err)
	}
	if _, err := word(st[:]); err != nil {
		return nil, d.errorf("status word: %w (is this an SHT3x?)", err)
	}
	return d, nil
}

func (d *Dev) errorf(format string, args ...any) error {
	return fmt.Errorf("sht3x at 0x%02x: %w", d.dev.Addr, fmt.Errorf(format, args...))
}

// CRC8 is the Sensirion checksum: poly 0x31, init 0xFF (datasheet §4.12,
// CRC(0xBEEF) = 0x92).
func CRC8(data []byte) byte {
	crc := byte(0xFF)
	for _, b := range data {
		crc ^= b
		for i := 0; i < 8; i++ {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x31
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// word checks and decodes one MSB, LSB, CRC triple.
func word(b []byte) (uint16, error) {
	if got := CRC8(b[:2]); got != b[2] {
		return 0, fmt.Errorf("%w: word 0x%02x%02x carries CRC 0x%02x, computed 0x%02x", devices.ErrChecksum, b[0], b[1], b[2], got)
	}
	return uint16(b[0])<<8 | uint16(b[1]), nil
}

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Read implements devices.Device: one single-shot measurement.
func (d *Dev) Read(ctx context.Context) (devices.Readings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dev.Tx(d.cmd[:], nil); err != nil {
		return nil, d.errorf("start measurement: %w", err)
	}
	if err := devices.Sleep(ctx, d.wait); err != nil {
		return nil, err
	}
	var b [6]byte
	if err := d.dev.Tx(nil, b[:]); err != nil {
		return nil, d.errorf("read measurement: %w", err)
	}
	st, err := word(b[0:3])
	if err != nil {
		return nil, d.errorf("temperature: %w", err)
	}
	srh, err := word(b[3:6])
	if err != nil {
		return nil, d.errorf("humidity: %w", err)
	}
	return devices.Readings{
		"temperature": devices.Number(round2(-45 + 175*float64(st)/65535)),
		"humidity":    devices.Number(round2(100 * float64(srh) / 65535)),
	}, nil
}

// round2 rounds to 0.01, the sensor's resolution being about 0.003 °C.
func round2(x float64) float64 {
	if x < 0 {
		return -float64(int64(-x*100+0.5)) / 100
	}
	return float64(int64(x*100+0.5)) / 100
}

// Write implements devices.Device; a sensor has nothing writable.
func (d *Dev) Write(_ context.Context, prop string, v devices.Value) error {
	_, err := devices.CheckWrite(d.props, prop, v)
	return err
}

// Close implements devices.Device (single-shot mode leaves the chip idle).
func (d *Dev) Close() error { return nil }
