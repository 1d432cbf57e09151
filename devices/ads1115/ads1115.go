// Package ads1115 drives the TI ADS1115 16-bit 4-channel ADC on I2C
// (driver "ads1115").
//
// This is our driver, not periph.io/x/devices/v3/ads1x15, because that one
// starts a single-shot conversion, sleeps exactly 1/data-rate (without a
// context) and reads the conversion register without checking the OS bit:
// the ADS1115's data rate is only ±10 % accurate (datasheet §7.5), so a
// slow part is read before the conversion finishes and reports the
// previous channel's value. Here each channel is converted in single-shot
// mode (§8.4.2), the OS bit of the config register is polled until the
// conversion is done (bounded, context-aware), and only then is the
// conversion register read.
package ads1115

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
)

// Options configure an ADS1115.
type Options struct {
	Bus string `yaml:"bus"`
	// Address is 0x48–0x4B (ADDR to GND, VDD, SDA, SCL).
	Address uint16 `yaml:"address"`
	// DataRate in samples/s: 8, 16, 32, 64, 128, 250, 475 or 860.
	DataRate int `yaml:"data_rate"`
	// Channels to read; empty means a0…a3, single-ended, ±4.096 V.
	Channels []Channel `yaml:"channels"`
}

// Channel is one property: an input (or input pair) at a full scale.
type Channel struct {
	// Name of the property ("a0", "battery").
	Name string `yaml:"name"`
	// Input is "0"…"3" (against GND) or "0-1", "0-3", "1-3", "2-3"
	// (differential).
	Input string `yaml:"input"`
	// FullScale is the PGA range in V: 6.144, 4.096, 2.048, 1.024, 0.512
	// or 0.256 (gain 2/3 … 16). Inputs must stay within GND−0.3 V …
	// VDD+0.3 V whatever the range.
	FullScale float64 `yaml:"full_scale"`
}

// Defaults returns address 0x48, 128 SPS (the chip's default), and the
// four single-ended channels at ±4.096 V.
func Defaults() Options { return Options{Address: 0x48, DataRate: 128} }

// muxCode returns the MUX field for an input (datasheet §8.6.3).
func muxCode(input string) (uint16, bool) {
	switch input {
	case "0-1":
		return 0, true
	case "0-3":
		return 1, true
	case "1-3":
		return 2, true
	case "2-3":
		return 3, true
	case "0", "1", "2", "3":
		return 4 + uint16(input[0]-'0'), true
	}
	return 0, false
}

// pgaCode returns the PGA field for a full scale in V.
func pgaCode(fs float64) (uint16, bool) {
	for i, v := range []float64{6.144, 4.096, 2.048, 1.024, 0.512, 0.256} {
		if fs == v {
			return uint16(i), true
		}
	}
	return 0, false
}

// rateCode returns the DR field for a data rate in samples/s.
func rateCode(sps int) (uint16, bool) {
	for i, v := range []int{8, 16, 32, 64, 128, 250, 475, 860} {
		if sps == v {
			return uint16(i), true
		}
	}
	return 0, false
}

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.Bus == "" {
		return devices.Invalidf("bus is required (an I2C bus such as 1)")
	}
	if o.Address < 0x48 || o.Address > 0x4B {
		return devices.Invalidf("address 0x%02x is not an ADS1115 address: use 0x48–0x4b", o.Address)
	}
	if _, ok := rateCode(o.DataRate); !ok {
		return devices.Invalidf("data_rate %d must be one of 8, 16, 32, 64, 128, 250, 475, 860", o.DataRate)
	}
	seen := map[string]bool{}
	for i, c := range o.channels() {
		if c.Name == "" {
			return devices.Invalidf("channels[%d]: name is required", i)
		}
		if seen[c.Name] {
			return devices.Invalidf("channels[%d]: name %q used twice", i, c.Name)
		}
		seen[c.Name] = true
		if _, ok := muxCode(c.Input); !ok {
			return devices.Invalidf("channel %q: input %q must be 0, 1, 2, 3 or a pair 0-1, 0-3, 1-3, 2-3", c.Name, c.Input)
		}
		if _, ok := pgaCode(c.FullScale); !ok {
			return devices.Invalidf("channel %q: full_scale %v must be 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256 (V)", c.Name, c.FullScale)
		}
	}
	return nil
}

func (o Options) channels() []Channel {
	if len(o.Channels) > 0 {
		return o.Channels
	}
	return []Channel{{"a0", "0", 4.096}, {"a1", "1", 4.096}, {"a2", "2", 4.096}, {"a3", "3", 4.096}}
}

// Driver returns the ads1115 driver.
func Driver() devices.Driver {
	return devices.Define("ads1115", "TI ADS1115 16-bit 4-channel ADC (I2C)", Defaults,
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
	var p []devices.Property
	for _, c := range o.channels() {
		p = append(p, devices.Property{Name: c.Name, Type: devices.TypeNumber, Unit: "V",
			Range: &devices.Range{Min: -c.FullScale, Max: c.FullScale}, Readable: true,
			Description: "voltage on input " + c.Input})
	}
	return p
}

// Dev is an opened ADS1115.
type Dev struct {
	dev      i2c.Dev
	o        Options
	chans    []Channel
	props    []devices.Property
	convTime time.Duration
	mu       sync.Mutex
}

const (
	regConversion = 0x00
	regConfig     = 0x01
	cfgOS         = 0x8000
	cfgModeSingle = 0x0100
	cfgCompQueOff = 0x0003
)

// New checks the chip answers with a plausible config register and
// returns the device. The ADS1115 has no ID register; its config register
// has fixed reset bits we can at least sanity-check.
func New(ctx context.Context, bus i2c.Bus, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &Dev{dev: i2c.Dev{Bus: bus, Addr: o.Address}, o: o, chans: o.channels(), props: properties(o),
		convTime: time.Second / time.Duration(o.DataRate)}
	if _, err := d.readReg(regConfig); err != nil {
		return nil, d.errorf("read config: %w", err)
	}
	return d, nil
}

func (d *Dev) errorf(format string, args ...any) error {
	return fmt.Errorf("ads1115 at 0x%02x: %w", d.dev.Addr, fmt.Errorf(format, args...))
}

func (d *Dev) readReg(reg byte) (uint16, error) {
	var b [2]byte
	if err := d.dev.Tx([]byte{reg}, b[:]); err != nil {
		return 0, err
	}
	return uint16(b[0])<<8 | uint16(b[1]), nil
}

// Config returns the config register value that starts a single-shot
// conversion of c (datasheet §8.6.3).
func (o Options) Config(c Channel) uint16 {
	mux, _ := muxCode(c.Input)
	pga, _ := pgaCode(c.FullScale)
	dr, _ := rateCode(o.DataRate)
	return cfgOS | mux<<12 | pga<<9 | cfgModeSingle | dr<<5 | cfgCompQueOff
}

// Volts converts a conversion code at a full scale (§8.3.3: LSB = FS/2^15).
func Volts(code int16, fullScale float64) float64 {
	return float64(code) * fullScale / 32768
}

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Read implements devices.Device: each channel is converted in turn.
func (d *Dev) Read(ctx context.Context) (devices.Readings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := devices.Readings{}
	for _, c := range d.chans {
		v, err := d.convert(ctx, c)
		if err != nil {
			return nil, err
		}
		r[c.Name] = devices.Number(v)
	}
	return r, nil
}

func (d *Dev) convert(ctx context.Context, c Channel) (float64, error) {
	cfg := d.o.Config(c)
	if err := d.dev.Tx([]byte{regConfig, byte(cfg >> 8), byte(cfg)}, nil); err != nil {
		return 0, d.errorf("channel %s: start conversion: %w", c.Name, err)
	}
	if err := devices.Sleep(ctx, d.convTime); err != nil {
		return 0, err
	}
	// Poll OS for up to about twice the nominal time: the oscillator is
	// ±10 %, so anything longer means the chip is not converting.
	step := d.convTime/10 + 100*time.Microsecond
	for i := 0; ; i++ {
		st, err := d.readReg(regConfig)
		if err != nil {
			return 0, d.errorf("channel %s: read config: %w", c.Name, err)
		}
		if st&cfgOS != 0 {
			break
		}
		if i == 12 {
			return 0, d.errorf("channel %s: conversion still running after %v: %w", c.Name, d.convTime+12*step, hal.ErrTimeout)
		}
		if err := devices.Sleep(ctx, step); err != nil {
			return 0, err
		}
	}
	raw, err := d.readReg(regConversion)
	if err != nil {
		return 0, d.errorf("channel %s: read conversion: %w", c.Name, err)
	}
	return Volts(int16(raw), c.FullScale), nil
}

// Write implements devices.Device; an ADC has nothing writable.
func (d *Dev) Write(_ context.Context, prop string, v devices.Value) error {
	_, err := devices.CheckWrite(d.props, prop, v)
	return err
}

// Close implements devices.Device (single-shot mode powers down after each
// conversion).
func (d *Dev) Close() error { return nil }
