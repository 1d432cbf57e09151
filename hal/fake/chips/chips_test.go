package chips_test

import (
	"errors"
	"math"
	"testing"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
)

// The models plug into the fake HAL's bus and its thermal model.
var (
	_ fake.Device          = (*chips.BME280)(nil)
	_ fake.Device          = (*chips.SHT3x)(nil)
	_ fake.Device          = (*chips.AHT20)(nil)
	_ fake.Device          = (*chips.BH1750)(nil)
	_ fake.Device          = (*chips.ADS1115)(nil)
	_ fake.Device          = (*chips.PCA9685)(nil)
	_ fake.Device          = (*chips.MCP23017)(nil)
	_ fake.Device          = (*chips.INA219)(nil)
	_ fake.TemperatureSink = (*chips.BME280)(nil)
	_ fake.TemperatureSink = (*chips.SHT3x)(nil)
	_ fake.TemperatureSink = (*chips.AHT20)(nil)
	_ i2c.Bus              = (*chips.Bus)(nil)
)

func tx(t *testing.T, c chips.Chip, w []byte, n int) []byte {
	t.Helper()
	r := make([]byte, n)
	if err := c.Tx(w, r); err != nil {
		t.Fatalf("Tx(% x, %d): %v", w, n, err)
	}
	return r
}

func TestBusAndFaults(t *testing.T) {
	b := chips.NewBus()
	if err := b.Tx(0x40, []byte{0}, nil); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("empty address: %v", err)
	}
	c := chips.NewPCA9685()
	b.Attach(0x40, c)
	c.FailNext(2, hal.ErrTimeout)
	for i := 0; i < 2; i++ {
		if err := b.Tx(0x40, []byte{0}, make([]byte, 1)); !errors.Is(err, hal.ErrTimeout) {
			t.Errorf("fault %d: %v", i, err)
		}
	}
	if err := b.Tx(0x40, []byte{0}, make([]byte, 1)); err != nil {
		t.Errorf("after the faults: %v", err)
	}
	c.Fail(hal.ErrNACK)
	for i := 0; i < 3; i++ {
		if err := b.Tx(0x40, []byte{0}, nil); !errors.Is(err, hal.ErrNACK) {
			t.Errorf("Fail: %v", err)
		}
	}
	c.Heal()
	if err := b.Tx(0x40, []byte{0}, nil); err != nil || c.Failed() != 5 || b.Transactions() != 8 {
		t.Errorf("after Heal: %v, failed %d, transactions %d", err, c.Failed(), b.Transactions())
	}
	b.Detach(0x40)
	if err := b.Tx(0x40, nil, nil); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("detached: %v", err)
	}
}

func TestBME280Registers(t *testing.T) {
	c := chips.NewBME280(chips.DatasheetCalibration())
	if id := tx(t, c, []byte{0xD0}, 1)[0]; id != 0x60 {
		t.Errorf("id 0x%02x", id)
	}
	// Reset values: data registers 0x80000 / 0x8000 (§5.3).
	if got := tx(t, c, []byte{0xF7}, 8); got[0] != 0x80 || got[3] != 0x80 || got[6] != 0x80 {
		t.Errorf("data after reset % x", got)
	}
	// Calibration bytes at 0x88 are little-endian T1 = 27504 = 0x6B70.
	if got := tx(t, c, []byte{0x88}, 2); got[0] != 0x70 || got[1] != 0x6B {
		t.Errorf("dig_T1 bytes % x", got)
	}
	c.SetRaw(519888, 415148, 0x6A4C)
	// Writes are register/value pairs; ctrl_hum only counts after ctrl_meas.
	tx(t, c, []byte{0xF2, 0x01, 0xF4, 0x25}, 0)
	if got := c.Register(0xF4); got != 0x24 {
		t.Errorf("ctrl_meas after forced = 0x%02x, want back to sleep (0x24)", got)
	}
	got := tx(t, c, []byte{0xF7}, 8)
	if adcP := int32(got[0])<<12 | int32(got[1])<<4 | int32(got[2])>>4; adcP != 415148 {
		t.Errorf("adc_P = %d", adcP)
	}
	if adcT := int32(got[3])<<12 | int32(got[4])<<4 | int32(got[5])>>4; adcT != 519888 {
		t.Errorf("adc_T = %d", adcT)
	}
	// Pressure oversampling skipped: 0x80000 (§4: "skipped").
	tx(t, c, []byte{0xF4, 0x21}, 0)
	if got := tx(t, c, []byte{0xF7}, 3); got[0] != 0x80 || got[1] != 0 {
		t.Errorf("skipped pressure reads % x", got)
	}
	// Soft reset.
	tx(t, c, []byte{0xE0, 0xB6}, 0)
	if c.Register(0xF4) != 0 || c.Register(0xF2) != 0 {
		t.Error("reset left control registers set")
	}
	c.SetBusy(2)
	tx(t, c, []byte{0xF4, 0x25}, 0)
	for i, want := range []byte{0x08, 0x08, 0x00} {
		if got := tx(t, c, []byte{0xF3}, 1)[0]; got != want {
			t.Errorf("status read %d = 0x%02x, want 0x%02x", i, got, want)
		}
	}
}

func TestBME280Inversion(t *testing.T) {
	cal := chips.DatasheetCalibration()
	c := chips.NewBME280(cal)
	for _, temp := range []float64{-40, -0.01, 0, 25.08, 85} {
		c.SetTemperature(temp)
		c.SetPressure(100000)
		tx(t, c, []byte{0xF2, 0x01, 0xF4, 0x25}, 0)
		b := tx(t, c, []byte{0xF7}, 8)
		adcT := int32(b[3])<<12 | int32(b[4])<<4 | int32(b[5])>>4
		adcP := int32(b[0])<<12 | int32(b[1])<<4 | int32(b[2])>>4
		centi, tFine := cal.CompensateT(adcT)
		if math.Abs(float64(centi)/100-temp) > 0.01 {
			t.Errorf("set %v °C, raw compensates to %v", temp, float64(centi)/100)
		}
		if p := float64(cal.CompensateP(adcP, tFine)) / 256; math.Abs(p-100000) > 0.2 {
			t.Errorf("at %v °C: pressure %v Pa, want 100000", temp, p)
		}
	}
}

func TestBMP280HasNoHumidity(t *testing.T) {
	c := chips.NewBMP280(chips.DatasheetCalibration())
	if id := tx(t, c, []byte{0xD0}, 1)[0]; id != 0x58 {
		t.Errorf("id 0x%02x", id)
	}
	tx(t, c, []byte{0xF2, 0x05, 0xF4, 0x25}, 0)
	if c.Register(0xF2) != 0 {
		t.Error("a BMP280 has no ctrl_hum")
	}
	if got := tx(t, c, []byte{0xE1}, 7); got[0] != 0 || got[1] != 0 {
		t.Errorf("humidity calibration on a BMP280: % x", got)
	}
}

func TestSHT3xCommands(t *testing.T) {
	c := chips.NewSHT3x()
	if err := c.Tx(nil, make([]byte, 6)); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("read with no measurement: %v", err)
	}
	if err := c.Tx([]byte{0x24}, nil); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("half a command: %v", err)
	}
	st := tx(t, c, []byte{0xF3, 0x2D}, 3)
	if st[0] != 0x80 || st[1] != 0x10 || st[2] != chips.SensirionCRC8(st[:2]) {
		t.Errorf("reset status % x", st)
	}
	tx(t, c, []byte{0x30, 0x6D}, 0) // heater on
	tx(t, c, []byte{0x12, 0x34}, 0) // unknown
	st = tx(t, c, []byte{0xF3, 0x2D}, 3)
	if st[0]&0x20 == 0 || st[1]&0x02 == 0 {
		t.Errorf("status % x: want heater (bit 13) and command-not-processed (bit 1)", st)
	}
	tx(t, c, []byte{0x30, 0x41}, 0) // clear
	if s := c.Status(); s != 0x2000 {
		t.Errorf("status after clear 0x%04x, want only the heater bit", s)
	}
	c.SetTemperature(130)
	c.SetHumidity(100)
	tx(t, c, []byte{0x2C, 0x06}, 0)
	got := tx(t, c, nil, 6)
	if got[0] != 0xFF || got[1] != 0xFF || got[3] != 0xFF || got[4] != 0xFF {
		t.Errorf("full-scale measurement % x", got)
	}
	if c.Measurements() != 1 {
		t.Errorf("measurements %d", c.Measurements())
	}
}

func TestAHT20(t *testing.T) {
	c := chips.NewAHT20()
	if st := tx(t, c, []byte{0x71}, 1)[0]; st != 0x08 {
		t.Errorf("status 0x%02x, want calibrated and idle", st)
	}
	tx(t, c, []byte{0xBA}, 0)
	if st := tx(t, c, []byte{0x71}, 1)[0]; st&0x08 != 0 {
		t.Error("soft reset kept the calibrated bit")
	}
	tx(t, c, []byte{0xBE, 0x08, 0x00}, 0)
	c.SetHumidity(50)
	c.SetTemperature(30)
	tx(t, c, []byte{0xAC, 0x33, 0x00}, 0)
	r := tx(t, c, nil, 7)
	h := uint32(r[1])<<12 | uint32(r[2])<<4 | uint32(r[3])>>4
	tt := uint32(r[3]&0x0F)<<16 | uint32(r[4])<<8 | uint32(r[5])
	if math.Abs(float64(h)/(1<<20)*100-50) > 0.001 || math.Abs(float64(tt)/(1<<20)*200-50-30) > 0.001 || r[6] != chips.SensirionCRC8(r[:6]) {
		t.Errorf("measurement % x", r)
	}
	if err := c.Tx([]byte{0x42}, nil); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("unknown command: %v", err)
	}
}

func TestBH1750DatasheetCount(t *testing.T) {
	c := chips.NewBH1750()
	c.SetLux(28067)
	tx(t, c, []byte{0x01, 0x20}, 0)
	// 28067 lx · 1.2 = 33680 = 0x8390, the datasheet's example count.
	if got := tx(t, c, nil, 2); got[0] != 0x83 || got[1] != 0x90 {
		t.Errorf("count % x, want 83 90", got)
	}
	tx(t, c, []byte{0x47, 0x7E}, 0) // MTreg 254
	if c.MTreg() != 254 {
		t.Errorf("MTreg %d", c.MTreg())
	}
}

func TestADS1115(t *testing.T) {
	c := chips.NewADS1115()
	if got := tx(t, c, []byte{0x01}, 2); got[0] != 0x85 || got[1] != 0x83 {
		t.Errorf("config reset % x, want 85 83", got)
	}
	if got := tx(t, c, []byte{0x02}, 2); got[0] != 0x80 || got[1] != 0x00 {
		t.Errorf("Lo_thresh reset % x", got)
	}
	// Continuous mode, AIN1, ±2.048 V: the conversion follows the input.
	tx(t, c, []byte{0x01, 0x54, 0x83}, 0)
	for _, v := range []float64{0.5, -0.25, 3} {
		c.SetVoltage(1, v)
		got := tx(t, c, []byte{0x00}, 2)
		code := int16(uint16(got[0])<<8 | uint16(got[1]))
		want := math.Max(-32768, math.Min(32767, math.Round(v/2.048*32768)))
		if float64(code) != want {
			t.Errorf("%v V: code %d, want %v", v, code, want)
		}
	}
	if err := c.Tx([]byte{0x01, 0x00}, nil); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("half a word: %v", err)
	}
}

func TestPCA9685(t *testing.T) {
	c := chips.NewPCA9685()
	// PRE_SCALE 0x1E: 25 MHz/(4096·31) = 196.9 Hz, the datasheet's "200 Hz".
	if math.Abs(c.Frequency()-196.9) > 0.1 || !c.Sleeping() || c.Duty(0) != 0 {
		t.Errorf("reset: %v Hz, sleeping %v, duty %v", c.Frequency(), c.Sleeping(), c.Duty(0))
	}
	// AI off (reset): the pointer stays, so this writes 0x06 three times.
	tx(t, c, []byte{0x06, 1, 2, 3}, 0)
	if c.Register(0x06) != 3 || c.Register(0x07) != 0 {
		t.Errorf("without AI: 0x06=%d 0x07=%d", c.Register(0x06), c.Register(0x07))
	}
	tx(t, c, []byte{0x00, 0x20}, 0) // wake, AI
	tx(t, c, []byte{0xFE, 0x79}, 0) // prescale while awake: ignored
	if c.Register(0xFE) != 0x1E {
		t.Error("PRE_SCALE written while awake")
	}
	tx(t, c, []byte{0xFA, 0, 0, 0x00, 0x08}, 0) // ALL_LED: 50 %
	for ch := 0; ch < 16; ch++ {
		if c.Duty(ch) != 0.5 {
			t.Errorf("ch%d duty %v after ALL_LED", ch, c.Duty(ch))
		}
	}
	if got := tx(t, c, []byte{0xFA}, 4); got[2] != 0 || got[3] != 0 {
		t.Errorf("ALL_LED reads % x, want zeros", got)
	}
	tx(t, c, []byte{0x0A, 0, 0x10, 0, 0x10}, 0) // ch1: full on and full off
	if c.Duty(1) != 0 {
		t.Error("full off must win over full on")
	}
}

func TestMCP23017(t *testing.T) {
	c := chips.NewMCP23017()
	regs := tx(t, c, []byte{0x00}, 0x16+2)
	if regs[0] != 0xFF || regs[1] != 0xFF || regs[0x16] != 0xFF || regs[0x17] != 0xFF {
		t.Errorf("sequential read should start at IODIRA and wrap after 0x15: % x", regs)
	}
	c.SetInput(3, true)
	tx(t, c, []byte{0x0C, 0x10}, 0) // pull-up on A4 (floating)
	if got := tx(t, c, []byte{0x12}, 1)[0]; got != 0x18 {
		t.Errorf("GPIOA = 0x%02x, want A3 driven high and A4 pulled up (0x18)", got)
	}
	tx(t, c, []byte{0x02, 0x08}, 0) // IPOLA inverts A3
	if got := tx(t, c, []byte{0x12}, 1)[0]; got != 0x10 {
		t.Errorf("GPIOA with IPOL = 0x%02x, want 0x10", got)
	}
	tx(t, c, []byte{0x13, 0x81}, 0) // writing GPIOB writes OLATB
	tx(t, c, []byte{0x01, 0x00}, 0) // port B outputs
	if lvl, out := c.Output(15); !lvl || !out {
		t.Errorf("B7: level %v output %v", lvl, out)
	}
	if got := c.Register(0x15); got != 0x81 {
		t.Errorf("OLATB 0x%02x", got)
	}
	tx(t, c, []byte{0x0A, 0x20}, 0) // SEQOP = 1: the pointer stays
	if got := tx(t, c, []byte{0x15}, 3); got[0] != 0x81 || got[2] != 0x81 {
		t.Errorf("byte mode read % x", got)
	}
}

func TestINA219(t *testing.T) {
	c := chips.NewINA219(0.1)
	if got := tx(t, c, []byte{0x00}, 2); got[0] != 0x39 || got[1] != 0x9F {
		t.Errorf("config reset % x", got)
	}
	c.SetCurrent(1)
	c.SetBusVoltage(12)
	if got := tx(t, c, []byte{0x04}, 2); got[0] != 0 || got[1] != 0 {
		t.Errorf("current before calibration % x, want 0", got)
	}
	if got := tx(t, c, []byte{0x01}, 2); uint16(got[0])<<8|uint16(got[1]) != 10000 {
		t.Errorf("shunt register % x, want 10000 (100 mV)", got)
	}
	tx(t, c, []byte{0x05, 0x20, 0x01}, 0) // bit 0 is read-only
	if c.Register(0x05) != 0x2000 {
		t.Errorf("calibration 0x%04x", c.Register(0x05))
	}
	if err := c.Tx([]byte{0x06}, make([]byte, 2)); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("pointer 6: %v", err)
	}
	tx(t, c, []byte{0x00, 0x80, 0x00}, 0)
	if c.Register(0x05) != 0 || c.Register(0x00) != 0x399F {
		t.Error("reset bit did not reset")
	}
}
