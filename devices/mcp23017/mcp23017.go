// Package mcp23017 drives the Microchip MCP23017 16-bit I/O expander on
// I2C (driver "mcp23017"): each configured line is a bool property, an
// input (optional pull-up) or an output.
//
// This is our driver, not periph.io/x/devices/v3/mcp23xxx, because that one
// registers every pin in periph's global gpioreg (package-level state
// shared by every test and device), caches registers without a lock (a
// data race and lost updates when two lines of a port are written
// concurrently), returns Low instead of an error when a read fails, and
// switches a line to output before setting its latch (a glitch to the old
// level). Here: register map with IOCON.BANK = 0 (datasheet §3.5), OLAT
// written before IODIR so outputs come up at their initial level, one
// sequential read of all 22 registers per Read (§3.2.1), and
// re-initialisation when that read shows the chip lost its configuration
// (power glitch: IODIR back to 0xFF). Inputs are sampled on Read; the INT
// pins are not used.
package mcp23017

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/devices"
)

// Options configure an MCP23017.
type Options struct {
	Bus string `yaml:"bus"`
	// Address is 0x20–0x27 (A2 A1 A0 pins).
	Address uint16 `yaml:"address"`
	// Lines to expose; empty means all 16 as inputs without pull-up,
	// named a0…a7, b0…b7.
	Lines []Line `yaml:"lines"`
}

// Line is one pin of the expander.
type Line struct {
	// Line is the pin: "A0"…"A7" (GPA0–7) or "B0"…"B7" (GPB0–7).
	Line string `yaml:"line"`
	// Name of the property; default the line in lower case ("a0").
	Name string `yaml:"name"`
	// Mode is "input" or "output".
	Mode string `yaml:"mode"`
	// Pull is "up" or "none" (inputs only; the chip has no pull-down).
	Pull string `yaml:"pull"`
	// ActiveLow: the property is true when the pin is low.
	ActiveLow bool `yaml:"active_low"`
	// Initial logical level of an output, applied at open.
	Initial bool `yaml:"initial"`
}

// Defaults returns address 0x20 and all lines as inputs.
func Defaults() Options { return Options{Address: 0x20} }

// ParseLine returns the bit number (0–15) of "A0"…"B7" (also "GPA0").
func ParseLine(s string) (int, error) {
	u := strings.TrimPrefix(strings.ToUpper(s), "GP")
	if len(u) != 2 || (u[0] != 'A' && u[0] != 'B') || u[1] < '0' || u[1] > '7' {
		return 0, devices.Invalidf("line %q must be A0…A7 or B0…B7", s)
	}
	n := int(u[1] - '0')
	if u[0] == 'B' {
		n += 8
	}
	return n, nil
}

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.Bus == "" {
		return devices.Invalidf("bus is required (an I2C bus such as 1)")
	}
	if o.Address < 0x20 || o.Address > 0x27 {
		return devices.Invalidf("address 0x%02x is not an MCP23017 address: use 0x20–0x27", o.Address)
	}
	seenLine, seenName := map[int]bool{}, map[string]bool{}
	for _, l := range o.lines() {
		n, err := ParseLine(l.Line)
		if err != nil {
			return err
		}
		if seenLine[n] {
			return devices.Invalidf("line %s listed twice", l.Line)
		}
		seenLine[n] = true
		if seenName[l.Name] {
			return devices.Invalidf("line name %q used twice", l.Name)
		}
		seenName[l.Name] = true
		switch l.Mode {
		case "input":
			if l.Pull != "up" && l.Pull != "none" && l.Pull != "" {
				return devices.Invalidf("line %s: pull %q must be up or none (the MCP23017 has no pull-down)", l.Line, l.Pull)
			}
		case "output":
			if l.Pull != "" && l.Pull != "none" {
				return devices.Invalidf("line %s: pull is for inputs only", l.Line)
			}
		default:
			return devices.Invalidf("line %s: mode %q must be input or output", l.Line, l.Mode)
		}
	}
	return nil
}

func (o Options) lines() []Line {
	if len(o.Lines) == 0 {
		ls := make([]Line, 16)
		for i := range ls {
			ls[i] = Line{Line: fmt.Sprintf("%c%d", 'A'+i/8, i%8), Mode: "input"}
		}
		o.Lines = ls
	}
	ls := make([]Line, len(o.Lines))
	for i, l := range o.Lines {
		if l.Name == "" {
			l.Name = strings.ToLower(strings.TrimPrefix(strings.ToUpper(l.Line), "GP"))
		}
		ls[i] = l
	}
	return ls
}

// Driver returns the mcp23017 driver.
func Driver() devices.Driver {
	return devices.Define("mcp23017", "Microchip MCP23017 16-line I/O expander (I2C)", Defaults,
		func(o Options) []devices.Property { return properties(o.lines()) },
		func(ctx context.Context, env devices.Env, o Options) (devices.Device, error) {
			bus, err := env.I2C(ctx, o.Bus)
			if err != nil {
				return nil, err
			}
			return New(ctx, bus, o)
		})
}

func properties(ls []Line) []devices.Property {
	p := make([]devices.Property, len(ls))
	for i, l := range ls {
		p[i] = devices.Property{Name: l.Name, Type: devices.TypeBool, Readable: true, Writable: l.Mode == "output",
			Description: l.Mode + " on pin GP" + strings.ToUpper(strings.TrimPrefix(strings.ToUpper(l.Line), "GP"))}
	}
	return p
}

// Registers, IOCON.BANK = 0 (datasheet table 3-5).
const (
	regIODIR   = 0x00
	regIPOL    = 0x02
	regGPINTEN = 0x04
	regIOCON   = 0x0A
	regGPPU    = 0x0C
	regGPIO    = 0x12
	regOLAT    = 0x14
	numRegs    = 0x16
)

type line struct {
	Line
	bit int
}

// Dev is an opened MCP23017.
type Dev struct {
	dev   i2c.Dev
	lines []line
	props []devices.Property
	iodir uint16 // 1 = input
	gppu  uint16
	inv   uint16 // active-low lines

	mu   sync.Mutex
	olat uint16 // physical output latch we want
}

// New configures the lines (outputs at their initial level before they
// become outputs) and checks the chip kept the direction register.
func New(ctx context.Context, bus i2c.Bus, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := &Dev{dev: i2c.Dev{Bus: bus, Addr: o.Address}, iodir: 0xFFFF}
	for _, l := range o.lines() {
		n, _ := ParseLine(l.Line)
		d.lines = append(d.lines, line{l, n})
		bit := uint16(1) << n
		if l.ActiveLow {
			d.inv |= bit
		}
		switch l.Mode {
		case "output":
			d.iodir &^= bit
			if l.Initial != l.ActiveLow {
				d.olat |= bit
			}
		case "input":
			if l.Pull == "up" {
				d.gppu |= bit
			}
		}
	}
	d.props = properties(o.lines())
	if err := d.init(); err != nil {
		return nil, err
	}
	var got [2]byte
	if err := d.dev.Tx([]byte{regIODIR}, got[:]); err != nil {
		return nil, d.errorf("read IODIR: %w", err)
	}
	if v := uint16(got[1])<<8 | uint16(got[0]); v != d.iodir {
		return nil, d.errorf("%w: wrote IODIR=0x%04x, read back 0x%04x: not an MCP23017?", devices.ErrWrongChip, d.iodir, v)
	}
	return d, nil
}

func (d *Dev) errorf(format string, args ...any) error {
	return fmt.Errorf("mcp23017 at 0x%02x: %w", d.dev.Addr, fmt.Errorf(format, args...))
}

func le(v uint16) (byte, byte) { return byte(v), byte(v >> 8) }

// init writes the configuration. The first write puts IOCON at its reset
// value whatever the bank mode: with BANK = 1, IOCON is at 0x05; with
// BANK = 0, 0x05 is GPINTENB, which we want 0 anyway.
func (d *Dev) init() error {
	olatA, olatB := le(d.olat)
	gppuA, gppuB := le(d.gppu)
	dirA, dirB := le(d.iodir)
	for _, w := range [][]byte{
		{0x05, 0x00},
		{regIOCON, 0x00},
		{regIPOL, 0, 0, 0, 0}, // IPOL A/B and GPINTEN A/B off
		{regOLAT, olatA, olatB},
		{regGPPU, gppuA, gppuB},
		{regIODIR, dirA, dirB}, // last: outputs start at their latch level
	} {
		if err := d.dev.Tx(w, nil); err != nil {
			return d.errorf("write register 0x%02x: %w", w[0], err)
		}
	}
	return nil
}

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Read implements devices.Device: inputs from GPIO, outputs from OLAT,
// from one sequential read of the register file.
func (d *Dev) Read(context.Context) (devices.Readings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b [numRegs]byte
	if err := d.dev.Tx([]byte{regIODIR}, b[:]); err != nil {
		return nil, d.errorf("read registers: %w", err)
	}
	word := func(r int) uint16 { return uint16(b[r+1])<<8 | uint16(b[r]) }
	if word(regIODIR) != d.iodir || word(regGPPU) != d.gppu || b[regIOCON] != 0 || word(regOLAT)&^d.iodir != d.olat&^d.iodir {
		// The chip lost its setup (reset) or someone else wrote it.
		if err := d.init(); err != nil {
			return nil, err
		}
		if err := d.dev.Tx([]byte{regIODIR}, b[:]); err != nil {
			return nil, d.errorf("read registers: %w", err)
		}
	}
	pins, olat := word(regGPIO), word(regOLAT)
	r := devices.Readings{}
	for _, l := range d.lines {
		v := pins
		if l.Mode == "output" {
			v = olat
		}
		r[l.Name] = devices.Bool((v>>l.bit)&1 == 1 != l.ActiveLow)
	}
	return r, nil
}

// Write implements devices.Device: sets an output line.
func (d *Dev) Write(_ context.Context, prop string, v devices.Value) error {
	if _, err := devices.CheckWrite(d.props, prop, v); err != nil {
		return err
	}
	var l line
	for _, l = range d.lines {
		if l.Name == prop {
			break
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	olat := d.olat
	if v.Bool() != l.ActiveLow {
		olat |= 1 << l.bit
	} else {
		olat &^= 1 << l.bit
	}
	port := l.bit / 8
	if err := d.dev.Tx([]byte{regOLAT + byte(port), byte(olat >> (8 * port))}, nil); err != nil {
		return d.errorf("set %s: %w", l.Name, err)
	}
	d.olat = olat
	return nil
}

// Close implements devices.Device; outputs keep their level (like a GPIO
// line released by the kernel, the chip holds its latch).
func (d *Dev) Close() error { return nil }
