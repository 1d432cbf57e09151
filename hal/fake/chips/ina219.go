package chips

import (
	"math"
	"sync"

	"github.com/pinshadow/pinshadow/hal"
)

// INA219 models a TI INA219 current/power monitor (datasheet SBOS448G
// §8.6): pointer byte then 16-bit big-endian registers, no
// auto-increment. Configuration 0x00 (reset 0x399F; bit 15 resets; BRNG
// bit 13 selects 16/32 V, PG bits 12:11 the shunt range ±40/80/160/320 mV),
// shunt voltage 0x01 (10 µV/LSB, saturating at the PGA range), bus voltage
// 0x02 (4 mV/LSB in bits 15:3, CNVR bit 1, OVF bit 0), power 0x03,
// current 0x04, calibration 0x05 (bit 0 reads 0). As §8.5.1 says, current
// = shunt·cal/4096 and power = current·bus/5000; both read 0 until a
// calibration is written, and OVF is set when those computations
// overflow or the shunt voltage is out of the PGA range. The shunt
// resistance given to NewINA219 turns SetCurrent into a shunt voltage.
type INA219 struct {
	Faults

	mu     sync.Mutex
	ptr    byte
	config uint16
	cal    uint16
	shunt  float64 // Ω
	vbus   float64
	amps   float64
}

// NewINA219 returns a model with a shunt of shuntOhms, in its reset state.
func NewINA219(shuntOhms float64) *INA219 {
	return &INA219{config: 0x399F, shunt: shuntOhms}
}

// SetBusVoltage sets the bus voltage (IN− to GND) in V.
func (c *INA219) SetBusVoltage(v float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vbus = v
}

// SetCurrent sets the current through the shunt in A.
func (c *INA219) SetCurrent(a float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.amps = a
}

// Register returns a register's value.
func (c *INA219) Register(reg byte) uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read(reg)
}

// Tx implements Chip.
func (c *INA219) Tx(w, r []byte) error {
	if err := c.take(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch len(w) {
	case 0:
	case 1:
		c.ptr = w[0]
	case 3:
		c.ptr = w[0]
		c.write(c.ptr, uint16(w[1])<<8|uint16(w[2]))
	default:
		return hal.ErrNACK
	}
	if c.ptr > 5 {
		return hal.ErrNACK
	}
	if len(r) > 0 {
		v := c.read(c.ptr)
		fill(r, []byte{byte(v >> 8), byte(v)})
	}
	return nil
}

func (c *INA219) write(reg byte, v uint16) {
	switch reg {
	case 0:
		if v&0x8000 != 0 {
			c.config, c.cal = 0x399F, 0
			return
		}
		c.config = v
	case 5:
		c.cal = v &^ 1
	}
}

// shuntReg returns the shunt voltage register and whether it saturated.
func (c *INA219) shuntReg() (int16, bool) {
	pg := (c.config >> 11) & 3
	limit := 4000 << pg // 40 mV·2^pg in 10 µV steps
	v := math.Round(c.amps * c.shunt / 10e-6)
	if v > float64(limit) {
		return int16(limit), true
	}
	if v < -float64(limit) {
		return int16(-limit), true
	}
	return int16(v), false
}

func (c *INA219) busReg() (uint16, bool) {
	fs := 16.0
	if c.config&0x2000 != 0 {
		fs = 32
	}
	v := math.Round(clamp(c.vbus, 0, fs) / 4e-3)
	return uint16(v), false
}

func (c *INA219) currentReg() (int32, bool) {
	s, sat := c.shuntReg()
	cur := int32(s) * int32(c.cal) / 4096
	return cur, sat || cur > math.MaxInt16 || cur < math.MinInt16
}

func (c *INA219) read(reg byte) uint16 {
	switch reg {
	case 0:
		return c.config
	case 1:
		s, _ := c.shuntReg()
		return uint16(s)
	case 2:
		bus, _ := c.busReg()
		_, ovf := c.currentReg()
		_, povf := c.powerReg()
		v := bus<<3 | 0x02 // CNVR: a conversion is always ready
		if c.cal != 0 && (ovf || povf) {
			v |= 0x01
		}
		return v
	case 3:
		p, _ := c.powerReg()
		return uint16(p)
	case 4:
		cur, _ := c.currentReg()
		return uint16(int16(cur))
	case 5:
		return c.cal
	}
	return 0
}

func (c *INA219) powerReg() (int64, bool) {
	cur, _ := c.currentReg()
	bus, _ := c.busReg()
	p := int64(cur) * int64(bus) / 5000
	if p < 0 {
		p = -p
	}
	return p, p > math.MaxUint16
}
