package chips

import (
	"sync"
	"time"
)

// PCA9685 models an NXP PCA9685 16-channel 12-bit PWM controller
// (datasheet rev 4, §7.3): MODE1 0x00 (reset 0x11: SLEEP, ALLCALL; bit 5
// AI enables register auto-increment, otherwise the pointer stays put),
// MODE2 0x01 (reset 0x04), LEDn_ON_L/H, LEDn_OFF_L/H at 0x06+4n (reset:
// full off, LEDn_OFF_H bit 4), ALL_LED_* 0xFA–0xFD (writes go to every
// channel, reads return 0), PRE_SCALE 0xFE (reset 0x1E = 200 Hz; writes
// are ignored unless SLEEP is set, §7.3.5). Output frequency is
// 25 MHz / (4096·(PRE_SCALE+1)). Full-on (ON_H bit 4) and full-off (OFF_H
// bit 4, which wins) follow §7.3.3.
type PCA9685 struct {
	Faults

	mu   sync.Mutex
	regs [256]byte
	ptr  byte
}

// NewPCA9685 returns a model in its power-on state.
func NewPCA9685() *PCA9685 {
	c := &PCA9685{}
	c.regs[0x00], c.regs[0x01], c.regs[0xFE] = 0x11, 0x04, 0x1E
	for ch := 0; ch < 16; ch++ {
		c.regs[0x09+4*ch] = 0x10
	}
	return c
}

// Register returns a register's value.
func (c *PCA9685) Register(addr byte) byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[addr]
}

// Frequency returns the PWM frequency in Hz set by PRE_SCALE.
func (c *PCA9685) Frequency() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return 25e6 / (4096 * (float64(c.regs[0xFE]) + 1))
}

// Sleeping reports MODE1.SLEEP (oscillator off, outputs off).
func (c *PCA9685) Sleeping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[0]&0x10 != 0
}

// Duty returns the fraction of the period channel ch is on (0…1).
func (c *PCA9685) Duty(ch int) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.regs[0x06+4*ch : 0x0A+4*ch]
	on := int(b[1]&0x0F)<<8 | int(b[0])
	off := int(b[3]&0x0F)<<8 | int(b[2])
	switch {
	case b[3]&0x10 != 0:
		return 0
	case b[1]&0x10 != 0:
		return 1
	}
	return float64((off-on+4096)%4096) / 4096
}

// Pulse returns how long channel ch is high each period.
func (c *PCA9685) Pulse(ch int) time.Duration {
	period := time.Duration(float64(time.Second) / c.Frequency())
	return time.Duration(c.Duty(ch) * float64(period))
}

// Tx implements Chip.
func (c *PCA9685) Tx(w, r []byte) error {
	if err := c.take(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(w) > 0 {
		c.ptr = w[0]
		for _, v := range w[1:] {
			c.write(c.ptr, v)
			c.advance()
		}
	}
	for i := range r {
		if c.ptr >= 0xFA && c.ptr <= 0xFD {
			r[i] = 0
		} else {
			r[i] = c.regs[c.ptr]
		}
		c.advance()
	}
	return nil
}

func (c *PCA9685) advance() {
	if c.regs[0]&0x20 != 0 {
		c.ptr++
	}
}

func (c *PCA9685) write(reg, v byte) {
	switch {
	case reg == 0x00:
		c.regs[0] = v &^ 0x80 // writing RESTART clears it
	case reg >= 0xFA && reg <= 0xFD:
		for ch := 0; ch < 16; ch++ {
			c.regs[0x06+4*ch+int(reg-0xFA)] = v
		}
	case reg == 0xFE:
		if c.regs[0]&0x10 != 0 {
			c.regs[0xFE] = max(v, 3) // §7.3.5: values below 3 read as 3
		}
	case reg == 0xFF:
		// TestMode: must not be written; ignored.
	default:
		c.regs[reg] = v
	}
}

// MCP23017 models a Microchip MCP23017 16-bit I/O expander (datasheet
// DS20001952C §3.5, IOCON.BANK = 0 register map): IODIRA/B 0x00/0x01
// (reset 0xFF, 1 = input), IPOLA/B 0x02/0x03, GPINTEN, DEFVAL, INTCON,
// IOCON 0x0A/0x0B (shared), GPPUA/B 0x0C/0x0D, INTF, INTCAP, GPIOA/B
// 0x12/0x13 (reads the pins, writes OLAT), OLATA/B 0x14/0x15. With
// IOCON.SEQOP = 0 (reset) the pointer auto-increments and wraps from 0x15
// to 0x00 (§3.2.1). Lines 0–7 are GPA0–7, 8–15 GPB0–7. An input line reads
// the level applied with SetInput, or its pull-up (1) or 0 when floating;
// an output line reads OLAT.
type MCP23017 struct {
	Faults

	mu       sync.Mutex
	regs     [0x16]byte
	ptr      byte
	ext      uint16 // externally driven levels
	extValid uint16 // which lines are externally driven
}

// NewMCP23017 returns a model in its power-on state (all inputs).
func NewMCP23017() *MCP23017 {
	c := &MCP23017{}
	c.regs[0x00], c.regs[0x01] = 0xFF, 0xFF
	return c
}

// SetInput drives line (0–15) from outside to level.
func (c *MCP23017) SetInput(line int, level bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.extValid |= 1 << line
	if level {
		c.ext |= 1 << line
	} else {
		c.ext &^= 1 << line
	}
}

// Release stops driving line from outside (it floats or is pulled up).
func (c *MCP23017) Release(line int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.extValid &^= 1 << line
}

// Output returns the level the chip drives on line and whether the line is
// an output at all.
func (c *MCP23017) Output(line int) (level, isOutput bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	iodir := uint16(c.regs[0x01])<<8 | uint16(c.regs[0x00])
	olat := uint16(c.regs[0x15])<<8 | uint16(c.regs[0x14])
	return olat&(1<<line) != 0, iodir&(1<<line) == 0
}

// Register returns a register's value (BANK = 0 addresses).
func (c *MCP23017) Register(addr byte) byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr >= 0x12 && addr <= 0x13 {
		return c.gpio(addr)
	}
	return c.regs[addr%0x16]
}

// Reset models a power cycle: every register returns to its reset value.
func (c *MCP23017) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.regs = [0x16]byte{}
	c.regs[0x00], c.regs[0x01] = 0xFF, 0xFF
}

// Tx implements Chip.
func (c *MCP23017) Tx(w, r []byte) error {
	if err := c.take(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(w) > 0 {
		c.ptr = w[0] % 0x16
		for _, v := range w[1:] {
			c.write(c.ptr, v)
			c.advance()
		}
	}
	for i := range r {
		if c.ptr == 0x12 || c.ptr == 0x13 {
			r[i] = c.gpio(c.ptr)
		} else {
			r[i] = c.regs[c.ptr]
		}
		c.advance()
	}
	return nil
}

func (c *MCP23017) advance() {
	if c.regs[0x0A]&0x20 == 0 { // SEQOP = 0: sequential
		c.ptr = (c.ptr + 1) % 0x16
	}
}

func (c *MCP23017) write(reg, v byte) {
	switch reg {
	case 0x0A, 0x0B:
		c.regs[0x0A], c.regs[0x0B] = v&^0x01, v&^0x01
	case 0x0E, 0x0F, 0x10, 0x11:
		// INTF and INTCAP are read-only.
	case 0x12, 0x13:
		c.regs[reg+2] = v // writing GPIO writes OLAT
	default:
		c.regs[reg] = v
	}
}

// gpio returns the pin levels of port A (0x12) or B (0x13), after IPOL.
func (c *MCP23017) gpio(reg byte) byte {
	port := reg - 0x12
	iodir, ipol, gppu, olat := c.regs[port], c.regs[0x02+port], c.regs[0x0C+port], c.regs[0x14+port]
	ext, valid := byte(c.ext>>(8*port)), byte(c.extValid>>(8*port))
	in := ext&valid | gppu&^valid
	return olat&^iodir | (in^ipol)&iodir
}
