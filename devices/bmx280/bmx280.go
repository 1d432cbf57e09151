// Package bmx280 drives Bosch BME280 (temperature, humidity, pressure) and
// BMP280 (temperature, pressure) sensors on I2C, drivers "bme280" and
// "bmp280".
//
// This is our driver, not periph.io/x/devices/v3/bmxx80, because that
// driver's one-shot Sense sleeps without a context and then polls the
// status register in a loop with no delay and no bound: a chip stuck
// "measuring" (or a bus reading 0xFF) spins a core forever while holding
// its mutex. Here every Read runs one forced-mode measurement
// (datasheet §3.3.3) with a context-aware wait of the datasheet's maximum
// measurement time (§9.1) and a bounded status poll, and rewrites
// ctrl_hum/config/ctrl_meas each time so a chip reset by a power glitch is
// reconfigured by the next read. Compensation is the datasheet's integer
// code (§4.2.3, 32-bit temperature and humidity, 64-bit pressure); the
// tests check it against the datasheet's worked example (25.08 °C,
// 100653 Pa) and against periph's driver on the same chip model.
package bmx280

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
)

// Variant selects the chip.
type Variant int

// Chips this package drives.
const (
	BME280 Variant = iota
	BMP280
)

func (v Variant) String() string {
	if v == BMP280 {
		return "bmp280"
	}
	return "bme280"
}

// Options configure a BME280 or BMP280.
type Options struct {
	// Bus is the I2C bus name ("1").
	Bus string `yaml:"bus"`
	// Address is 0x76 (SDO to GND) or 0x77 (SDO to VDDIO).
	Address uint16 `yaml:"address"`
	// Oversampling for every quantity: 1, 2, 4, 8 or 16 (noise vs time;
	// §3.4 recommends 1 for weather monitoring).
	Oversampling int `yaml:"oversampling"`
	// Filter is the IIR filter coefficient: 0 (off), 2, 4, 8 or 16.
	Filter int `yaml:"filter"`
}

// Defaults returns the weather-monitoring settings of datasheet §3.5.1.
func Defaults() Options { return Options{Address: 0x76, Oversampling: 1} }

// Validate implements devices.Options.
func (o *Options) Validate() error {
	if o.Bus == "" {
		return devices.Invalidf("bus is required (an I2C bus such as 1)")
	}
	if o.Address != 0x76 && o.Address != 0x77 {
		return devices.Invalidf("address 0x%02x is not a BME280/BMP280 address: use 0x76 (SDO to GND) or 0x77 (SDO high)", o.Address)
	}
	if osrsCode(o.Oversampling) == 0 {
		return devices.Invalidf("oversampling %d must be 1, 2, 4, 8 or 16", o.Oversampling)
	}
	if filterCode(o.Filter) < 0 {
		return devices.Invalidf("filter %d must be 0, 2, 4, 8 or 16", o.Filter)
	}
	return nil
}

func osrsCode(n int) byte {
	switch n {
	case 1:
		return 1
	case 2:
		return 2
	case 4:
		return 3
	case 8:
		return 4
	case 16:
		return 5
	}
	return 0
}

func filterCode(n int) int {
	switch n {
	case 0:
		return 0
	case 2:
		return 1
	case 4:
		return 2
	case 8:
		return 3
	case 16:
		return 4
	}
	return -1
}

// Drivers returns the bme280 and bmp280 drivers.
func Drivers() []devices.Driver {
	return []devices.Driver{driver(BME280), driver(BMP280)}
}

func driver(v Variant) devices.Driver {
	summary := "Bosch BME280 temperature, humidity and pressure sensor (I2C)"
	if v == BMP280 {
		summary = "Bosch BMP280 temperature and pressure sensor (I2C)"
	}
	return devices.Define(v.String(), summary, Defaults,
		func(Options) []devices.Property { return properties(v) },
		func(ctx context.Context, env devices.Env, o Options) (devices.Device, error) {
			bus, err := env.I2C(ctx, o.Bus)
			if err != nil {
				return nil, err
			}
			return New(ctx, bus, v, o)
		})
}

func properties(v Variant) []devices.Property {
	p := []devices.Property{
		{Name: "temperature", Type: devices.TypeNumber, Unit: "°C", Range: &devices.Range{Min: -40, Max: 85}, Readable: true, Description: "air temperature"},
		{Name: "pressure", Type: devices.TypeNumber, Unit: "Pa", Range: &devices.Range{Min: 30000, Max: 110000}, Readable: true, Description: "barometric pressure"},
	}
	if v == BME280 {
		p = append(p, devices.Property{Name: "humidity", Type: devices.TypeNumber, Unit: "%RH", Range: &devices.Range{Min: 0, Max: 100}, Readable: true, Description: "relative humidity"})
	}
	return p
}

// Registers (datasheet §5.3).
const (
	regCalib00  = 0x88
	regID       = 0xD0
	regReset    = 0xE0
	regCalib26  = 0xE1
	regCtrlHum  = 0xF2
	regStatus   = 0xF3
	regCtrlMeas = 0xF4
	regConfig   = 0xF5
	regData     = 0xF7

	statusMeasuring = 0x08
	statusIMUpdate  = 0x01
	modeForced      = 0x01
)

// Dev is an opened BME280/BMP280.
type Dev struct {
	dev     i2c.Dev
	variant Variant
	props   []devices.Property
	cal     calibration
	config  []byte // ctrl_hum, config, ctrl_meas (forced) write pairs
	wait    time.Duration

	mu sync.Mutex
}

// New checks the chip ID, resets the chip, reads its calibration and
// configures it. The bus stays the caller's.
func New(ctx context.Context, bus i2c.Bus, v Variant, o Options) (*Dev, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	d := &Dev{dev: i2c.Dev{Bus: bus, Addr: o.Address}, variant: v, props: properties(v)}
	var id [1]byte
	if err := d.dev.Tx([]byte{regID}, id[:]); err != nil {
		return nil, d.errorf("read chip id: %w", err)
	}
	if err := checkID(v, id[0]); err != nil {
		return nil, d.errorf("%w", err)
	}
	// Soft reset (§5.4.2) so no earlier normal-mode setup lingers, then
	// wait for the NVM copy (status im_update) to finish: 2 ms start-up.
	if err := d.dev.Tx([]byte{regReset, 0xB6}, nil); err != nil {
		return nil, d.errorf("soft reset: %w", err)
	}
	if err := d.waitStatus(ctx, statusIMUpdate, 2*time.Millisecond); err != nil {
		return nil, d.errorf("after reset: %w", err)
	}
	var tp [26]byte
	var h [7]byte
	if err := d.dev.Tx([]byte{regCalib00}, tp[:]); err != nil {
		return nil, d.errorf("read calibration: %w", err)
	}
	if v == BME280 {
		if err := d.dev.Tx([]byte{regCalib26}, h[:]); err != nil {
			return nil, d.errorf("read humidity calibration: %w", err)
		}
	}
	d.cal = parseCalibration(tp, h)
	if d.cal.T1 == 0 || d.cal.P1 == 0 || d.cal.T1 == 0xFFFF {
		return nil, d.errorf("%w: calibration data is blank (T1=%d, P1=%d): not a working %s", devices.ErrWrongChip, d.cal.T1, d.cal.P1, v)
	}
	osrs := osrsCode(o.Oversampling)
	meas := osrs<<5 | osrs<<2
	d.config = []byte{regConfig, byte(filterCode(o.Filter)) << 2, regCtrlMeas, meas | modeForced}
	if v == BME280 {
		d.config = append([]byte{regCtrlHum, osrs}, d.config...)
	}
	// Datasheet §9.1 maximum measurement time.
	n := float64(o.Oversampling)
	us := 1250 + 2300*n + 2300*n + 575
	if v == BME280 {
		us += 2300*n + 575
	}
	d.wait = time.Duration(us) * time.Microsecond
	// Leave it configured and asleep.
	if err := d.dev.Tx([]byte{regConfig, d.config[len(d.config)-3], regCtrlMeas, meas}, nil); err != nil {
		return nil, d.errorf("configure: %w", err)
	}
	return d, nil
}

func checkID(v Variant, id byte) error {
	switch {
	case v == BME280 && id == 0x60, v == BMP280 && id >= 0x56 && id <= 0x58:
		return nil
	case id == 0x60:
		return fmt.Errorf("%w: chip id 0x60 is a BME280; use driver bme280", devices.ErrWrongChip)
	case id >= 0x56 && id <= 0x58:
		return fmt.Errorf("%w: chip id 0x%02x is a BMP280 (no humidity); use driver bmp280", devices.ErrWrongChip, id)
	case id == 0x55:
		return fmt.Errorf("%w: chip id 0x55 is a BMP180, which is not supported", devices.ErrWrongChip)
	}
	return fmt.Errorf("%w: chip id 0x%02x is not a %s (want %s)", devices.ErrWrongChip, id, v, map[Variant]string{BME280: "0x60", BMP280: "0x58"}[v])
}

func (d *Dev) errorf(format string, args ...any) error {
	return fmt.Errorf("%s at 0x%02x: %w", d.variant, d.dev.Addr, fmt.Errorf(format, args...))
}

// waitStatus polls the status register until the bits in mask clear, for
// at most about 5 polls spaced by step.
func (d *Dev) waitStatus(ctx context.Context, mask byte, step time.Duration) error {
	var st [1]byte
	for i := 0; ; i++ {
		if err := d.dev.Tx([]byte{regStatus}, st[:]); err != nil {
			return fmt.Errorf("read status: %w", err)
		}
		if st[0]&mask == 0 {
			return nil
		}
		if i == 5 {
			return fmt.Errorf("status 0x%02x still busy after %d polls: %w", st[0], i+1, hal.ErrTimeout)
		}
		if err := devices.Sleep(ctx, step); err != nil {
			return err
		}
	}
}

// Properties implements devices.Device.
func (d *Dev) Properties() []devices.Property { return d.props }

// Read implements devices.Device: one forced-mode measurement.
func (d *Dev) Read(ctx context.Context) (devices.Readings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.dev.Tx(d.config, nil); err != nil {
		return nil, d.errorf("start measurement: %w", err)
	}
	if err := devices.Sleep(ctx, d.wait); err != nil {
		return nil, err
	}
	if err := d.waitStatus(ctx, statusMeasuring, d.wait/4+time.Millisecond); err != nil {
		return nil, d.errorf("measurement: %w", err)
	}
	buf := make([]byte, 8)
	if d.variant == BMP280 {
		buf = buf[:6]
	}
	if err := d.dev.Tx([]byte{regData}, buf); err != nil {
		return nil, d.errorf("read data: %w", err)
	}
	adcP := int32(buf[0])<<12 | int32(buf[1])<<4 | int32(buf[2])>>4
	adcT := int32(buf[3])<<12 | int32(buf[4])<<4 | int32(buf[5])>>4
	if adcT == 0x80000 || adcP == 0x80000 {
		return nil, d.errorf("%w: data registers hold the reset value 0x80000 (measurement skipped)", devices.ErrNotReady)
	}
	centi, tFine := d.cal.compensateT(adcT)
	r := devices.Readings{
		"temperature": devices.Number(float64(centi) / 100),
		"pressure":    devices.Number(float64(d.cal.compensateP(adcP, tFine)) / 256),
	}
	if d.variant == BME280 {
		adcH := int32(buf[6])<<8 | int32(buf[7])
		if adcH == 0x8000 {
			return nil, d.errorf("%w: humidity register holds the reset value 0x8000 (measurement skipped)", devices.ErrNotReady)
		}
		r["humidity"] = devices.Number(float64(d.cal.compensateH(adcH, tFine)) / 1024)
	}
	return r, nil
}

// Write implements devices.Device; a sensor has nothing writable.
func (d *Dev) Write(_ context.Context, prop string, v devices.Value) error {
	_, err := devices.CheckWrite(d.props, prop, v)
	return err
}

// Close implements devices.Device: the chip is left asleep (forced mode
// returns to sleep after each measurement); the bus is not closed.
func (d *Dev) Close() error { return nil }

type calibration struct {
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

func parseCalibration(tp [26]byte, h [7]byte) calibration {
	u := func(i int) uint16 { return uint16(tp[i]) | uint16(tp[i+1])<<8 }
	s := func(i int) int16 { return int16(u(i)) }
	return calibration{
		T1: u(0), T2: s(2), T3: s(4),
		P1: u(6), P2: s(8), P3: s(10), P4: s(12), P5: s(14), P6: s(16), P7: s(18), P8: s(20), P9: s(22),
		H1: tp[25],
		H2: int16(uint16(h[0]) | uint16(h[1])<<8),
		H3: h[2],
		// 0xE4/0xE5/0xE6 pack two 12-bit signed values (§4.2.2).
		H4: int16(int8(h[3]))<<4 | int16(h[4]&0x0F),
		H5: int16(int8(h[5]))<<4 | int16(h[4]>>4),
		H6: int8(h[6]),
	}
}

// compensateT: datasheet §4.2.3, temperature in 0.01 °C and t_fine.
func (c calibration) compensateT(adcT int32) (int32, int32) {
	var1 := (((adcT >> 3) - int32(c.T1)<<1) * int32(c.T2)) >> 11
	x := (adcT >> 4) - int32(c.T1)
	var2 := (((x * x) >> 12) * int32(c.T3)) >> 14
	tFine := var1 + var2
	return (tFine*5 + 128) >> 8, tFine
}

// compensateP: datasheet §4.2.3 64-bit version, Pa in Q24.8.
func (c calibration) compensateP(adcP, tFine int32) uint32 {
	var1 := int64(tFine) - 128000
	var2 := var1 * var1 * int64(c.P6)
	var2 += (var1 * int64(c.P5)) << 17
	var2 += int64(c.P4) << 35
	var1 = ((var1 * var1 * int64(c.P3)) >> 8) + ((var1 * int64(c.P2)) << 12)
	var1 = ((int64(1)<<47 + var1) * int64(c.P1)) >> 33
	if var1 == 0 {
		return 0
	}
	p := int64(1048576 - adcP)
	p = ((p<<31 - var2) * 3125) / var1
	var1 = (int64(c.P9) * (p >> 13) * (p >> 13)) >> 25
	var2 = (int64(c.P8) * p) >> 19
	return uint32(((p + var1 + var2) >> 8) + int64(c.P7)<<4)
}

// compensateH: datasheet §4.2.3, %RH in Q22.10.
func (c calibration) compensateH(adcH, tFine int32) uint32 {
	v := tFine - 76800
	v = ((((adcH << 14) - int32(c.H4)<<20 - int32(c.H5)*v) + 16384) >> 15) *
		(((((((v*int32(c.H6))>>10)*(((v*int32(c.H3))>>11)+32768))>>10)+2097152)*int32(c.H2) + 8192) >> 14)
	v -= ((((v >> 15) * (v >> 15)) >> 7) * int32(c.H1)) >> 4
	v = max(v, 0)
	v = min(v, 419430400)
	return uint32(v >> 12)
}
