// Package pca9685 drives the NXP PCA9685 16-channel 12-bit PWM controller
// on I2C (driver "pca9685"): each channel is a "pwm" property (duty 0–100 %)
// or a "servo" property (angle, pulse width within configured limits).
//
// This is our driver, not periph.io/x/devices/v3/pca9685, because that one
// (v3.7.4) computes PRE_SCALE without the datasheet's −1 (§7.3.5: 50 Hz
// becomes 49.6 Hz, every servo pulse 0.8 % long), sleeps 205 ms at start
// without a context, its gpio pin's Out ignores the level and its PWM with
// frequency 0 divides by zero. Here: PRE_SCALE = round(25 MHz/(4096·f)) − 1
// (200 Hz → 0x1E, the datasheet's example), the 500 µs oscillator start-up
// wait (§7.3.1.1), full-on/full-off bits for 100 %/0 % (§7.3.3), one
// auto-increment burst to read every channel back, and re-initialisation
// when a read finds the chip reset (asleep, prescale lost).
package pca9685

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/devices"
)

// Options configure a PCA9685.
type Options struct {
	Bus string `yaml:"bus"`
	// Address is 0x40–0x77 except 0x70 (the LED All Call address).
	Address uint16 `yaml:"address"`
	// Frequency of every channel in Hz, 24…1526 (50 for servos).
	Frequency float64 `yaml:"frequency"`
	// Channels to expose; empty means ch0…ch15, all "pwm".
	Channels []Channel `yaml:"channels"`
}

// Channel is one output.
type Channel struct {
	// Channel number, 0…15.
	Channel int `yaml:"channel"`
	// Name of the property; default "ch<N>".
	Name string `yaml:"name"`
	// Kind is "pwm" (duty %) or "servo" (angle).
	Kind string `yaml:"kind"`
	// Servo limits, for Kind "servo" (default 1–2 ms for 0–180°).
	Servo *devices.ServoLimits `yaml:"servo"`
}

// Defaults returns address 0x40 at 50 Hz (servo-friendly).
func Defaults() Options { return Options{Address: 0x40, Frequency: 50} }

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.Bus == "" {
		return devices.Invalidf("bus is required (an I2C bus such as 1)")
	}
	if o.Address < 0x40 || o.Address > 0x77 || o.Address == 0x70 {
		return devices.Invalidf("address 0x%02x is not a usable PCA9685 address: use 0x40–0x77 except 0x70 (All Call)", o.Address)
	}
	if !(o.Frequency >= 24 && o.Frequency <= 1526) {
		return devices.Invalidf("frequency %v Hz must be between 24 and 1526 (prescale 255…3)", o.Frequency)
	}
	period := periodFor(prescaleFor(o.Frequency))
	seenCh, seenName := map[int]bool{}, map[string]bool{}
	for _, c := range o.channels() {
		if c.Channel < 0 || c.Channel > 15 {
			return devices.Invalidf("channel %d must be 0…15", c.Channel)
		}
		if seenCh[c.Channel] {
			return devices.Invalidf("channel %d listed twice", c.Channel)
		}
		seenCh[c.Channel] = true
		if seenName[c.Name] {
			return devices.Invalidf("channel name %q used twice", c.Name)
		}
		seenName[c.Name] = true
		switch c.Kind {
		case "pwm":
		case "servo":
			if err := c.Servo.Validate(period); err != nil {
				return fmt.Errorf("channel %d: %w", c.Channel, err)
			}
		default:
			return devices.Invalidf("channel %d: kind %q must be pwm or servo", c.Channel, c.Kind)
		}
	}
	return nil
}

// channels returns the configured channels with defaults filled in.
func (o Options) channels() []Channel {
	if len(o.Channels) == 0 {
		cs := make([]Channel, 16)
		for i := range cs {
			cs[i] = Channel{Channel: i, Name: "ch" + strconv.Itoa(i), Kind: "pwm"}
		}
		return cs
	}
	cs := make([]Channel, len(o.Channels))
	for i, c := range o.Channels {
		if c.Name == "" {
			c.Name = "ch" + strconv.Itoa(c.Channel)
		}
		if c.Kind == "" {
			c.Kind = "pwm"
		}
		if c.Kind == "servo" && c.Servo == nil {
			l := devices.DefaultServoLimits()
			c.Servo = &l
		}
		cs[i] = c
	}
	return cs
}

const oscillator = 25e6

// prescaleFor is datasheet §7.3.5 equation 1.
func prescaleFor(hz float64) byte {
	p := math.Round(oscillator/(4096*hz)) - 1
	return byte(math.Max(3, math.Min(255, p)))
}

func periodFor(prescale byte) time.Duration {
	return time.Duration(float64(time.Second) * 4096 * (float64(prescale) + 1) / oscillator)
}

// Driver returns the pca9685 driver.
func Driver() devices.Driver {
	return devices.Define("pca9685", "NXP PCA9685 16-channel PWM/servo controller (I2C)", Defaults,
		func(o Options) []devices.Property { return properties(o.channels()) },
		func(ctx context.Context, env devices.Env, o Options) (devices.Device, error) {
			bus, err := env.I2C(ctx, o.Bus)
			if err != nil {
				return nil, err
			}
			return New(ctx, bus, o)
		})
}

func properties(cs []Channel) []devices.Property {
	p := make([]devices.Property, len(cs))
	for i, c := range cs {
		if c.Kind == "servo" {
			p[i] = c.Servo.Property(c.Name)
			p[i].Description = "servo angle on channel " + strconv.Itoa(c.Channel)
			continue
		}
		p[i] = devices.Property{Name: c.Name, Type: devices.TypeNumber, Unit: "%", Range: &devices.Range{Min: 0, Max: 100},
			Readable: true, Writable: true, Description: "duty cycle of channel " + strconv.Itoa(c.Channel)}
	}
	return p
}

// Registers and bits (datasheet §7.3).
const (
	regMode1    = 0x00
	regMode2    = 0x01
	regLED0     = 0x06
	regAllLED   = 0xFA
	regPrescale = 0xFE
	mode1Sleep  = 0x10
	mode1AI     = 0x20
	mode2OutDrv = 0x04
	fullBit     = 0x10
)

// Dev is an opened PCA9685.
type Dev struct {
	dev      i2c.Dev
	chans    []Channel
	props    []devices.Property
	prescale byte
	period   time.Duration

	mu   sync.Mutex
	last [16]written
}

// written remembers the last value set on a channel and the register bytes
// it became, so a read of unchanged registers echoes the exact value
// instead of its 12-bit approximation.
type written struct {
	ok    bool
	regs  [4]byte
	value float64
}

// New configures the chip (prescale, totem-pole outputs, all channels
// off, auto-increment) and checks it took the configuration.
func New(ctx context.Context, bus i2c.Bus, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	p := prescaleFor(o.Frequency)
	d := &Dev{dev: i2c.Dev{Bus: bus, Addr: o.Address}, chans: o.channels(), prescale: p, period: periodFor(p)}
	d.props = properties(d.chans)
	if err := d.init(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Dev) errorf(format string, args ...any) error {
	return fmt.Errorf("pca9685 at 0x%02x: %w", d.dev.Addr, fmt.Errorf(format, args...))
}

// init runs the start-up sequence of §7.3.1.1 and §7.3.5.
func (d *Dev) init(ctx context.Context) error {
	steps := [][]byte{
		{regMode1, mode1Sleep | mode1AI}, // sleep so PRE_SCALE is writable; no All Call
		{regPrescale, d.prescale},
		{regMode2, mode2OutDrv},
		{regAllLED, 0, 0, 0, fullBit}, // every channel full off
		{regMode1, mode1AI},           // wake
	}
	for _, w := range steps {
		if err := d.dev.Tx(w, nil); err != nil {
			return d.errorf("write register 0x%02x: %w", w[0], err)
		}
	}
	d.last = [16]written{}
	if err := devices.Sleep(ctx, 500*time.Microsecond); err != nil {
		return err
	}
	var mode1, pre [1]byte
	if err := d.dev.Tx([]byte{regMode1}, mode1[:]); err != nil {
		return d.errorf("read MODE1: %w", err)
	}
	if err := d.dev.Tx([]byte{regPrescale}, pre[:]); err != nil {
		return d.errorf("read PRE_SCALE: %w", err)
	}
	if mode1[0]&(mode1Sleep|mode1AI) != mode1AI || pre[0] != d.prescale {
		return d.errorf("%w: wrote MODE1=0x%02x PRE_SCALE=0x%02x, read back 0x%02x 0x%02x: not a PCA9685?",
			devices.ErrWrongChip, mode1AI, d.prescale, mode1[0], pre[0])
	}
	return nil
}

// Frequency returns the PWM frequency the prescale gives, in Hz.
func (d *Dev) Frequency() float64 { return float64(time.Second) / float64(d.period) }

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Registers returns the LEDn_ON_L…OFF_H bytes for a duty fraction (0…1).
func Registers(duty float64) [4]byte {
	switch {
	case duty <= 0:
		return [4]byte{0, 0, 0, fullBit}
	case duty >= 1:
		return [4]byte{0, fullBit, 0, 0}
	}
	off := int(math.Round(duty * 4096))
	off = max(1, min(4095, off))
	return [4]byte{0, 0, byte(off), byte(off >> 8)}
}

// duty decodes LEDn registers (§7.3.3; full off wins over full on).
func duty(b []byte) float64 {
	switch {
	case b[3]&fullBit != 0:
		return 0
	case b[1]&fullBit != 0:
		return 1
	}
	on := int(b[1]&0x0F)<<8 | int(b[0])
	off := int(b[3]&0x0F)<<8 | int(b[2])
	return float64((off-on+4096)%4096) / 4096
}

// Read implements devices.Device: one burst of every LED register.
func (d *Dev) Read(ctx context.Context) (devices.Readings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b [regLED0 + 64]byte
	if err := d.dev.Tx([]byte{regMode1}, b[:]); err != nil {
		return nil, d.errorf("read registers: %w", err)
	}
	var pre [1]byte
	if err := d.dev.Tx([]byte{regPrescale}, pre[:]); err != nil {
		return nil, d.errorf("read PRE_SCALE: %w", err)
	}
	if b[regMode1]&(mode1Sleep|mode1AI) != mode1AI || pre[0] != d.prescale {
		// Power glitch or someone else: the chip lost its setup. Set it
		// up again; every channel then reads off and gets rewritten.
		if err := d.init(ctx); err != nil {
			return nil, err
		}
		for i := range b[regLED0:] {
			b[regLED0+i] = 0
			if i%4 == 3 {
				b[regLED0+i] = fullBit
			}
		}
	}
	r := devices.Readings{}
	for _, c := range d.chans {
		regs := b[regLED0+4*c.Channel : regLED0+4*c.Channel+4]
		if w := d.last[c.Channel]; w.ok && [4]byte(regs) == w.regs {
			r[c.Name] = devices.Number(w.value)
			continue
		}
		f := duty(regs)
		if c.Kind == "servo" {
			if f == 0 {
				continue // not driven: no angle
			}
			r[c.Name] = devices.Number(math.Round(c.Servo.Angle(time.Duration(f*float64(d.period)))*100) / 100)
			continue
		}
		r[c.Name] = devices.Number(math.Round(f*100*100) / 100)
	}
	return r, nil
}

// Write implements devices.Device.
func (d *Dev) Write(ctx context.Context, prop string, v devices.Value) error {
	if _, err := devices.CheckWrite(d.props, prop, v); err != nil {
		return err
	}
	var c Channel
	for _, c = range d.chans {
		if c.Name == prop {
			break
		}
	}
	f := v.Number() / 100
	if c.Kind == "servo" {
		f = float64(c.Servo.Pulse(v.Number())) / float64(d.period)
	}
	regs := Registers(f)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dev.Tx(append([]byte{regLED0 + 4*byte(c.Channel)}, regs[:]...), nil); err != nil {
		d.last[c.Channel] = written{}
		return d.errorf("set channel %d: %w", c.Channel, err)
	}
	d.last[c.Channel] = written{ok: true, regs: regs, value: v.Number()}
	return nil
}

// Close implements devices.Device: every channel is turned off and the
// chip put to sleep, so nothing keeps driving after the agent stops.
func (d *Dev) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dev.Tx([]byte{regAllLED, 0, 0, 0, fullBit}, nil); err != nil {
		return d.errorf("turn channels off: %w", err)
	}
	if err := d.dev.Tx([]byte{regMode1, mode1Sleep | mode1AI}, nil); err != nil {
		return d.errorf("sleep: %w", err)
	}
	return nil
}
