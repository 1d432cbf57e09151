package chips

import (
	"math"
	"sync"

	"github.com/pinshadow/pinshadow/hal"
)

// BH1750 models a ROHM BH1750FVI ambient light sensor (datasheet
// 2011.11 rev D, "Instruction Set Architecture" p.5 and "Measurement
// sequence" p.7–11). It has no registers, only one-byte opcodes:
// 0x00 power down, 0x01 power on, 0x07 reset (data register, powered on
// only), 0x10/0x11/0x13 continuous H/H2/L-resolution mode, 0x20/0x21/0x23
// one-time H/H2/L mode (powers down after the measurement),
// 0x40|MT[7:5] and 0x60|MT[4:0] change the measurement time (MTreg,
// 31…254, default 69). A two-byte read returns the 16-bit result, count =
// lux·1.2·(MTreg/69), doubled in H2 mode, L mode has 4-count resolution.
// Measurements complete at once (the driver still waits the datasheet
// time). Commands other than power on are ignored while powered down
// except power down itself; a measurement command powers the chip on.
type BH1750 struct {
	Faults

	mu   sync.Mutex
	lux  float64
	on   bool
	mode byte // last measurement opcode, 0 if none
	mt   int
	data uint16
	meas int
	mtHi byte
}

// NewBH1750 returns a powered-down model at 0 lx with MTreg 69.
func NewBH1750() *BH1750 { return &BH1750{mt: 69, mtHi: 69 >> 5} }

// SetLux sets the illuminance in lx.
func (c *BH1750) SetLux(lux float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lux = lux
	if c.on && c.mode&0xF0 == 0x10 {
		c.convert() // continuous mode tracks the light
	}
}

// SetRaw forces the data register (e.g. the datasheet's 0x8390 example).
func (c *BH1750) SetRaw(v uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data = v
}

// MTreg returns the measurement time register.
func (c *BH1750) MTreg() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mt
}

// Measurements returns how many measurements ran.
func (c *BH1750) Measurements() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meas
}

// Tx implements Chip.
func (c *BH1750) Tx(w, r []byte) error {
	if err := c.take(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, op := range w {
		c.opcode(op)
	}
	if len(r) > 0 {
		fill(r, []byte{byte(c.data >> 8), byte(c.data)})
	}
	return nil
}

func (c *BH1750) opcode(op byte) {
	switch {
	case op == 0x00:
		c.on = false
	case op == 0x01:
		c.on = true
	case op == 0x07:
		if c.on {
			c.data = 0
		}
	case op == 0x10, op == 0x11, op == 0x13, op == 0x20, op == 0x21, op == 0x23:
		c.on, c.mode = true, op
		c.convert()
		if op&0xF0 == 0x20 {
			c.on = false
		}
	case op&0xF8 == 0x40:
		c.mtHi = op & 0x07
	case op&0xE0 == 0x60:
		c.mt = int(c.mtHi)<<5 | int(op&0x1F)
	}
}

func (c *BH1750) convert() {
	c.meas++
	v := c.lux * 1.2 * float64(c.mt) / 69
	if c.mode&0x0F == 0x01 {
		v *= 2
	}
	if c.mode&0x0F == 0x03 {
		v = math.Floor(v/4) * 4
	}
	c.data = uint16(math.Round(clamp(v, 0, 65535)))
}

// ADS1115 models a TI ADS1115 16-bit ADC (datasheet SBAS444D §8.6):
// pointer register (low two bits) selects conversion 0x00, config 0x01
// (reset 0x8583), Lo_thresh 0x02 (0x8000), Hi_thresh 0x03 (0x7FFF); all
// 16-bit big-endian. Writing config with OS=1 in single-shot mode (MODE=1)
// starts a conversion of the MUX input at the PGA full scale (§8.3.3,
// table 8); reading config returns OS=0 while it runs. In continuous mode
// the conversion register follows the input. Codes saturate at
// 0x7FFF/0x8000 (§8.3.3). Conversions finish at once unless SetBusy
// makes the next config reads report one in progress.
type ADS1115 struct {
	Faults

	mu      sync.Mutex
	regs    [4]uint16
	ptr     byte
	in      [4]float64
	busyCfg int
	busy    int
	pending int16
	convs   int
}

// NewADS1115 returns a model with its reset registers and 0 V inputs.
func NewADS1115() *ADS1115 {
	return &ADS1115{regs: [4]uint16{0, 0x8583, 0x8000, 0x7FFF}}
}

// SetVoltage sets the voltage on input AIN<ch> (0…3) relative to GND.
func (c *ADS1115) SetVoltage(ch int, v float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch >= 0 && ch < 4 {
		c.in[ch] = v
	}
}

// SetBusy makes the next n config reads after a conversion start report
// the conversion still running (OS = 0), and the conversion register keep
// its previous value until then.
func (c *ADS1115) SetBusy(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busyCfg = n
}

// Conversions returns how many single-shot conversions were started.
func (c *ADS1115) Conversions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.convs
}

// Config returns the config register.
func (c *ADS1115) Config() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[1]
}

// FullScale returns the PGA full-scale voltage for config bits 11:9.
func adsFullScale(pga uint16) float64 {
	return [8]float64{6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256}[pga&7]
}

func (c *ADS1115) sample() int16 {
	cfg := c.regs[1]
	mux := (cfg >> 12) & 7
	var v float64
	switch mux {
	case 0:
		v = c.in[0] - c.in[1]
	case 1:
		v = c.in[0] - c.in[3]
	case 2:
		v = c.in[1] - c.in[3]
	case 3:
		v = c.in[2] - c.in[3]
	default:
		v = c.in[mux-4]
	}
	code := math.Round(v / adsFullScale(cfg>>9) * 32768)
	return int16(clamp(code, -32768, 32767))
}

// Tx implements Chip.
func (c *ADS1115) Tx(w, r []byte) error {
	if err := c.take(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(w) > 0 {
		c.ptr = w[0] & 0x03
		switch len(w) {
		case 1:
		case 3:
			c.write(c.ptr, uint16(w[1])<<8|uint16(w[2]))
		default:
			return hal.ErrNACK // the chip expects exactly one 16-bit word
		}
	}
	if len(r) > 0 {
		v := c.read(c.ptr)
		fill(r, []byte{byte(v >> 8), byte(v)})
	}
	return nil
}

func (c *ADS1115) write(reg byte, v uint16) {
	if reg == 0 {
		return // conversion register is read-only
	}
	if reg != 1 {
		c.regs[reg] = v
		return
	}
	c.regs[1] = v &^ 0x8000
	if v&0x0100 != 0 && v&0x8000 != 0 { // single-shot start
		c.convs++
		c.pending = c.sample()
		c.busy = c.busyCfg
		if c.busy == 0 {
			c.regs[0] = uint16(c.pending)
		}
	}
}

func (c *ADS1115) read(reg byte) uint16 {
	switch reg {
	case 0:
		if c.regs[1]&0x0100 == 0 { // continuous
			c.regs[0] = uint16(c.sample())
		}
		return c.regs[0]
	case 1:
		if c.busy > 0 {
			c.busy--
			if c.busy == 0 {
				c.regs[0] = uint16(c.pending)
			}
			return c.regs[1] // OS = 0: converting
		}
		return c.regs[1] | 0x8000
	}
	return c.regs[reg]
}
