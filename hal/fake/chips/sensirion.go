package chips

import (
	"math"
	"sync"

	"github.com/pinshadow/pinshadow/hal"
)

// SHT3x models a Sensirion SHT30/31/35 humidity and temperature sensor
// (datasheet SHT3x-DIS v7):
//   - §4.3 single-shot commands 0x2400/0x240B/0x2416 (no clock stretching,
//     high/medium/low repeatability) and 0x2C06/0x2C0D/0x2C10 (clock
//     stretching); §4.5 periodic mode is not modelled;
//   - §4.4 a read returns T MSB, LSB, CRC, RH MSB, LSB, CRC; a read with
//     no measurement pending is NACKed;
//   - §4.9 soft reset 0x30A2, §4.10 heater 0x306D/0x3066, §4.11 status
//     0xF32D (word + CRC) and clear status 0x3041;
//   - §4.12 CRC-8 poly 0x31 init 0xFF on every word;
//   - §4.13 conversion: T = −45 + 175·S_T/65535, RH = 100·S_RH/65535.
//
// An unknown command sets status bit 1 ("command not processed").
type SHT3x struct {
	Faults

	mu          sync.Mutex
	t, rh       float64
	out         []byte // pending read data
	status      uint16
	corruptNext bool
	meas        int
}

// NewSHT3x returns a model at 25 °C, 50 %RH, with the reset status
// (alert pending, bit 15, and reset detected, bit 4).
func NewSHT3x() *SHT3x { return &SHT3x{t: 25, rh: 50, status: 0x8010} }

// SetTemperature sets the temperature in °C (−45…130).
func (c *SHT3x) SetTemperature(celsius float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = celsius
}

// SetHumidity sets the relative humidity in %RH.
func (c *SHT3x) SetHumidity(rh float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rh = rh
}

// CorruptNextCRC makes the next read carry a wrong CRC on its first word.
func (c *SHT3x) CorruptNextCRC() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corruptNext = true
}

// Measurements returns how many measurements were triggered.
func (c *SHT3x) Measurements() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meas
}

// Status returns the status register.
func (c *SHT3x) Status() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Tx implements Chip.
func (c *SHT3x) Tx(w, r []byte) error {
	if err := c.take(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case len(w) == 1:
		// Half a command: the chip NACKs the next byte it expected.
		return hal.ErrNACK
	case len(w) >= 2:
		c.command(uint16(w[0])<<8 | uint16(w[1]))
	}
	if len(r) == 0 {
		return nil
	}
	if c.out == nil {
		return hal.ErrNACK // no measurement pending: read header NACKed
	}
	out := c.out
	c.out = nil
	if c.corruptNext {
		c.corruptNext = false
		out[2] ^= 0xFF
	}
	fill(r, out)
	return nil
}

func (c *SHT3x) command(cmd uint16) {
	c.out = nil
	switch cmd {
	case 0x2400, 0x240B, 0x2416, 0x2C06, 0x2C0D, 0x2C10:
		c.meas++
		st := uint16(math.Round(clamp((c.t+45)/175, 0, 1) * 65535))
		srh := uint16(math.Round(clamp(c.rh/100, 0, 1) * 65535))
		c.out = append(sensirionWord(st), sensirionWord(srh)...)
	case 0xF32D:
		c.out = sensirionWord(c.status)
	case 0x3041:
		c.status &^= 0x8C13 // alert, tracking, reset, command and checksum flags
	case 0x30A2:
		c.status = 0x8010
	case 0x306D:
		c.status |= 0x2000
	case 0x3066:
		c.status &^= 0x2000
	default:
		c.status |= 0x0002
	}
}

func sensirionWord(v uint16) []byte {
	b := []byte{byte(v >> 8), byte(v)}
	return append(b, SensirionCRC8(b))
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

// AHT20 models an Aosong AHT20 humidity and temperature sensor at 0x38
// (datasheet v1.1):
//   - §5.3/5.4: status via 0x71 then a one-byte read (bit 7 busy, bit 3
//     calibrated); initialisation 0xBE 0x08 0x00 sets the calibrated bit;
//     trigger measurement 0xAC 0x33 0x00; soft reset 0xBA;
//   - §5.4 a read returns status, 20-bit RH, 20-bit T (sharing the middle
//     byte) and a CRC-8 (poly 0x31, init 0xFF) over the six bytes;
//   - §6: RH = S_RH/2^20·100 %, T = S_T/2^20·200 − 50 °C.
type AHT20 struct {
	Faults

	mu          sync.Mutex
	t, rh       float64
	calibrated  bool
	busyCfg     int
	busy        int
	data        [5]byte
	corruptNext bool
	meas        int
}

// NewAHT20 returns a calibrated model at 25 °C, 50 %RH (parts leave the
// factory calibrated).
func NewAHT20() *AHT20 { return &AHT20{t: 25, rh: 50, calibrated: true} }

// SetTemperature sets the temperature in °C (−40…85).
func (c *AHT20) SetTemperature(celsius float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = celsius
}

// SetHumidity sets the relative humidity in %RH.
func (c *AHT20) SetHumidity(rh float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rh = rh
}

// SetCalibrated sets the status "calibrated" bit (false models a part that
// needs the 0xBE initialisation).
func (c *AHT20) SetCalibrated(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calibrated = ok
}

// SetBusy makes the next n reads after a trigger report "busy".
func (c *AHT20) SetBusy(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busyCfg = n
}

// CorruptNextCRC makes the next measurement read carry a wrong CRC.
func (c *AHT20) CorruptNextCRC() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corruptNext = true
}

// Measurements returns how many measurements were triggered.
func (c *AHT20) Measurements() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meas
}

// Tx implements Chip.
func (c *AHT20) Tx(w, r []byte) error {
	if err := c.take(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(w) > 0 {
		switch {
		case w[0] == 0x71:
		case w[0] == 0xBA:
			c.calibrated, c.busy = false, 0
		case len(w) == 3 && w[0] == 0xBE && w[1] == 0x08 && w[2] == 0x00:
			c.calibrated = true
		case len(w) == 3 && w[0] == 0xAC && w[1] == 0x33 && w[2] == 0x00:
			c.meas++
			c.busy = c.busyCfg
			h := uint32(math.Round(clamp(c.rh/100, 0, 1) * (1<<20 - 1)))
			t := uint32(math.Round(clamp((c.t+50)/200, 0, 1) * (1<<20 - 1)))
			c.data = [5]byte{byte(h >> 12), byte(h >> 4), byte(h<<4) | byte(t>>16), byte(t >> 8), byte(t)}
		default:
			return hal.ErrNACK
		}
	}
	if len(r) == 0 {
		return nil
	}
	var status byte
	if c.calibrated {
		status |= 0x08
	}
	if c.busy > 0 {
		c.busy--
		status |= 0x80
	}
	out := append([]byte{status}, c.data[:]...)
	crc := SensirionCRC8(out)
	if c.corruptNext && len(r) >= 7 {
		c.corruptNext = false
		crc ^= 0xFF
	}
	fill(r, append(out, crc))
	return nil
}
