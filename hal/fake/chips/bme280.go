package chips

import (
	"math"
	"sync"
)

// BME280Calibration holds the trimming parameters a BME280/BMP280 stores in
// NVM (datasheet §4.2.2, registers 0x88–0xA1 and 0xE1–0xE7).
type BME280Calibration struct {
	T1                             uint16
	T2, T3                         int16
	P1                             uint16
	P2, P3, P4, P5, P6, P7, P8, P9 int16
	H1                             uint8
	H2                             int16
	H3                             uint8
	H4, H5                         int16
	H6                             int8
}

// DatasheetCalibration returns the temperature and pressure trimming values
// of Bosch's worked example (BME280 datasheet §8.2, also in the BMP280
// datasheet: with adc_T = 519888 and adc_P = 415148 they compensate to
// 25.08 °C and 100653 Pa). The datasheet has no humidity example; the H1–H6
// values are plausible ones (positive H2, so the compensation is monotonic)
// chosen for the model, not taken from a document.
func DatasheetCalibration() BME280Calibration {
	return BME280Calibration{
		T1: 27504, T2: 26435, T3: -1000,
		P1: 36477, P2: -10685, P3: 3024, P4: 2855, P5: 140, P6: -7, P7: 15500, P8: -14600, P9: 6000,
		H1: 75, H2: 362, H3: 0, H4: 313, H5: 50, H6: 30,
	}
}

// Bytes returns the calibration as the chip stores it: 26 bytes from 0x88
// (T1…P9 little-endian, 0xA0 reserved, 0xA1 = H1) and 7 bytes from 0xE1
// (H2 LE, H3, H4 = E4[7:0]<<4 | E5[3:0], H5 = E6<<4 | E5[7:4], H6).
func (c BME280Calibration) Bytes() (tp [26]byte, h [7]byte) {
	le := func(b []byte, v uint16) { b[0], b[1] = byte(v), byte(v>>8) }
	le(tp[0:], c.T1)
	le(tp[2:], uint16(c.T2))
	le(tp[4:], uint16(c.T3))
	le(tp[6:], c.P1)
	for i, p := range []int16{c.P2, c.P3, c.P4, c.P5, c.P6, c.P7, c.P8, c.P9} {
		le(tp[8+2*i:], uint16(p))
	}
	tp[25] = c.H1
	le(h[0:], uint16(c.H2))
	h[2] = c.H3
	h[3] = byte(c.H4 >> 4)
	h[4] = byte(c.H4&0x0F) | byte(c.H5&0x0F)<<4
	h[5] = byte(c.H5 >> 4)
	h[6] = byte(c.H6)
	return tp, h
}

// CompensateT is the datasheet's integer temperature compensation (BME280
// §4.2.3): it returns the temperature in 0.01 °C and t_fine.
func (c BME280Calibration) CompensateT(adcT int32) (centi int32, tFine int32) {
	var1 := (((adcT >> 3) - int32(c.T1)<<1) * int32(c.T2)) >> 11
	d := (adcT >> 4) - int32(c.T1)
	var2 := (((d * d) >> 12) * int32(c.T3)) >> 14
	tFine = var1 + var2
	return (tFine*5 + 128) >> 8, tFine
}

// CompensateP is the datasheet's 64-bit pressure compensation: pressure in
// Pa as Q24.8 (divide by 256).
func (c BME280Calibration) CompensateP(adcP, tFine int32) uint32 {
	var1 := int64(tFine) - 128000
	var2 := var1 * var1 * int64(c.P6)
	var2 += (var1 * int64(c.P5)) << 17
	var2 += int64(c.P4) << 35
	var1 = ((var1 * var1 * int64(c.P3)) >> 8) + ((var1 * int64(c.P2)) << 12)
	var1 = ((int64(1)<<47 + var1) * int64(c.P1)) >> 33
	if var1 == 0 {
		return 0 // avoid a division by zero
	}
	p := int64(1048576 - adcP)
	p = ((p<<31 - var2) * 3125) / var1
	var1 = (int64(c.P9) * (p >> 13) * (p >> 13)) >> 25
	var2 = (int64(c.P8) * p) >> 19
	p = ((p + var1 + var2) >> 8) + int64(c.P7)<<4
	return uint32(p)
}

// CompensateH is the datasheet's integer humidity compensation: relative
// humidity in %RH as Q22.10 (divide by 1024).
func (c BME280Calibration) CompensateH(adcH, tFine int32) uint32 {
	v := tFine - 76800
	v = ((((adcH << 14) - int32(c.H4)<<20 - int32(c.H5)*v) + 16384) >> 15) *
		(((((((v*int32(c.H6))>>10)*(((v*int32(c.H3))>>11)+32768))>>10)+2097152)*int32(c.H2) + 8192) >> 14)
	v -= ((((v >> 15) * (v >> 15)) >> 7) * int32(c.H1)) >> 4
	if v < 0 {
		v = 0
	}
	if v > 419430400 {
		v = 419430400
	}
	return uint32(v >> 12)
}

// BME280 models a Bosch BME280 (chip ID 0x60) or BMP280 (0x58, no humidity)
// on I2C, datasheet BME280 rev 1.6:
//   - §5.3 memory map: calib 0x88–0xA1 and 0xE1–0xE7, id 0xD0, reset 0xE0
//     (0xB6 resets), ctrl_hum 0xF2 (takes effect at the next ctrl_meas
//     write), status 0xF3 (bit 3 measuring), ctrl_meas 0xF4 (osrs_t, osrs_p,
//     mode), config 0xF5, data 0xF7–0xFE (press, temp 20 bit, hum 16 bit);
//   - §6.2.1 I2C writes are (register, value) pairs, a lone byte sets the
//     read pointer; §6.2.2 reads auto-increment;
//   - §3.3 forced mode runs one measurement and returns to sleep; normal
//     mode measures continuously; a skipped measurement reads 0x80000
//     (0x8000 for humidity), also the reset value.
//
// The data registers hold raw ADC values computed from the physical values
// set by inverting the compensation numerically, so a driver reads back the
// set value within the chip's resolution.
type BME280 struct {
	Faults

	mu      sync.Mutex
	id      byte
	cal     BME280Calibration
	regs    [256]byte
	ptr     byte
	adcT    int32
	adcP    int32
	adcH    int32
	busy    int // status reads left showing "measuring"
	busyCfg int
	meas    int  // measurements taken
	humOS   byte // ctrl_hum as latched by the last ctrl_meas write
}

// NewBME280 returns a BME280 model with the given calibration, at 25 °C,
// 101325 Pa, 50 %RH, in sleep mode.
func NewBME280(cal BME280Calibration) *BME280 { return newBMx280(0x60, cal) }

// NewBMP280 returns a BMP280 model (chip ID 0x58, no humidity).
func NewBMP280(cal BME280Calibration) *BME280 { return newBMx280(0x58, cal) }

func newBMx280(id byte, cal BME280Calibration) *BME280 {
	c := &BME280{id: id, cal: cal}
	c.reset()
	c.setEnv(25, 101325, 50)
	return c
}

func (c *BME280) reset() {
	c.regs = [256]byte{}
	c.humOS = 0
	tp, h := c.cal.Bytes()
	copy(c.regs[0x88:], tp[:])
	if c.id == 0x60 {
		copy(c.regs[0xE1:], h[:])
	}
	c.regs[0xD0] = c.id
	c.regs[0xF7], c.regs[0xFA], c.regs[0xFD] = 0x80, 0x80, 0x80
}

// SetChipID changes the value of the id register (to model a wrong part).
func (c *BME280) SetChipID(id byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id = id
	c.regs[0xD0] = id
}

// SetTemperature sets the temperature in °C (−40…85 is the chip's range).
func (c *BME280) SetTemperature(celsius float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, p, h := c.envLocked()
	c.setEnv(celsius, p, h)
}

// SetPressure sets the pressure in Pa (30000…110000 is the chip's range).
func (c *BME280) SetPressure(pa float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, _, h := c.envLocked()
	c.setEnv(t, pa, h)
}

// SetHumidity sets the relative humidity in %RH (0…100).
func (c *BME280) SetHumidity(rh float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, p, _ := c.envLocked()
	c.setEnv(t, p, rh)
}

// SetRaw sets the raw ADC values directly (20-bit T and P, 16-bit H), e.g.
// the datasheet's adc_T = 519888, adc_P = 415148.
func (c *BME280) SetRaw(adcT, adcP, adcH int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.adcT, c.adcP, c.adcH = adcT, adcP, adcH
}

// SetBusy makes the status register report "measuring" for the next n
// reads after each measurement starts (0: conversions finish at once).
func (c *BME280) SetBusy(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busyCfg = n
}

// Register returns the value of a register (for assertions on ctrl_meas,
// config, ctrl_hum).
func (c *BME280) Register(addr byte) byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[addr]
}

// Measurements returns how many measurements the chip ran.
func (c *BME280) Measurements() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meas
}

// envLocked returns the physical values the current raw values stand for.
func (c *BME280) envLocked() (t, p, h float64) {
	centi, tFine := c.cal.CompensateT(c.adcT)
	return float64(centi) / 100, float64(c.cal.CompensateP(c.adcP, tFine)) / 256,
		float64(c.cal.CompensateH(c.adcH, tFine)) / 1024
}

func (c *BME280) setEnv(t, p, h float64) {
	c.adcT = int32(closest(0, 1<<20-1, func(raw int64) float64 {
		_, tFine := c.cal.CompensateT(int32(raw))
		return float64(tFine) / 5120 // the unrounded temperature
	}, t))
	_, tFine := c.cal.CompensateT(c.adcT)
	// Near full scale the 64-bit formula wraps (its output is unsigned),
	// so search where it is monotonic: raw 0…0xF0000 spans ≈ 0…170 kPa.
	c.adcP = int32(closest(0, 0xF0000, func(raw int64) float64 {
		return float64(c.cal.CompensateP(int32(raw), tFine)) / 256
	}, p))
	c.adcH = int32(closest(0, 1<<16-1, func(raw int64) float64 {
		return float64(c.cal.CompensateH(int32(raw), tFine)) / 1024
	}, math.Max(0, math.Min(100, h))))
}

// Tx implements Chip.
func (c *BME280) Tx(w, r []byte) error {
	if err := c.take(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(w) >= 2 {
		c.write(w[0], w[1])
		w = w[2:]
	}
	if len(w) == 1 {
		c.ptr = w[0]
	}
	for i := range r {
		r[i] = c.read(c.ptr)
		if c.ptr < 0xFF {
			c.ptr++
		}
	}
	return nil
}

func (c *BME280) write(reg, v byte) {
	switch reg {
	case 0xE0:
		if v == 0xB6 {
			c.reset()
		}
	case 0xF2:
		if c.id == 0x60 {
			c.regs[0xF2] = v & 0x07
		}
	case 0xF5:
		c.regs[0xF5] = v &^ 0x02
	case 0xF4:
		c.regs[0xF4] = v
		// ctrl_hum is latched into the measurement setup by this write.
		c.humOS = c.regs[0xF2]
		switch v & 0x03 {
		case 0x01, 0x02: // forced: one measurement, then sleep
			c.measure()
			c.regs[0xF4] &^= 0x03
		case 0x03:
			c.measure()
		}
	}
}

func (c *BME280) read(reg byte) byte {
	switch {
	case reg == 0xF3:
		if c.busy > 0 {
			c.busy--
			return 0x08
		}
		return 0
	case reg == 0xF7 && c.regs[0xF4]&0x03 == 0x03:
		// Normal mode: a burst read sees the latest measurement.
		c.measure()
		c.busy = 0
	case reg >= 0xFD && c.id != 0x60:
		return 0x00 // no humidity on a BMP280
	}
	return c.regs[reg]
}

func (c *BME280) measure() {
	c.meas++
	c.busy = c.busyCfg
	meas := c.regs[0xF4]
	t, p := uint32(0x80000), uint32(0x80000)
	if meas>>5 != 0 {
		t = uint32(c.adcT)
	}
	if (meas>>2)&0x07 != 0 {
		p = uint32(c.adcP)
	}
	c.regs[0xF7], c.regs[0xF8], c.regs[0xF9] = byte(p>>12), byte(p>>4), byte(p<<4)
	c.regs[0xFA], c.regs[0xFB], c.regs[0xFC] = byte(t>>12), byte(t>>4), byte(t<<4)
	if c.id == 0x60 {
		h := uint16(0x8000)
		if c.humOS != 0 {
			h = uint16(c.adcH)
		}
		c.regs[0xFD], c.regs[0xFE] = byte(h>>8), byte(h)
	}
}
