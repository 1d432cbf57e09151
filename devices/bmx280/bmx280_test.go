package bmx280

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
)

func opts() Options {
	o := Defaults()
	o.Bus = "1"
	return o
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestDatasheetExample replays the register traffic of a BME280 holding
// Bosch's example calibration and raw values adc_T = 519888 and
// adc_P = 415148, which the datasheet compensates to 25.08 °C and
// 100653 Pa.
func TestDatasheetExample(t *testing.T) {
	tp, h := chips.DatasheetCalibration().Bytes()
	// adc_P = 0x655AC, adc_T = 0x7EED0 (20 bits, left-aligned in 3 bytes),
	// adc_H = 0x6A4C.
	data := []byte{0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x6A, 0x4C}
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x76, W: []byte{0xD0}, R: []byte{0x60}},
		{Addr: 0x76, W: []byte{0xE0, 0xB6}},
		{Addr: 0x76, W: []byte{0xF3}, R: []byte{0x00}},
		{Addr: 0x76, W: []byte{0x88}, R: tp[:]},
		{Addr: 0x76, W: []byte{0xE1}, R: h[:]},
		{Addr: 0x76, W: []byte{0xF5, 0x00, 0xF4, 0x24}},
		// Read: ctrl_hum ×1, config, ctrl_meas osrs_t=osrs_p=×1 forced.
		{Addr: 0x76, W: []byte{0xF2, 0x01, 0xF5, 0x00, 0xF4, 0x25}},
		{Addr: 0x76, W: []byte{0xF3}, R: []byte{0x00}},
		{Addr: 0x76, W: []byte{0xF7}, R: data},
	}}
	d, err := New(ctx(t), bus, BME280, opts())
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatalf("transcript not fully replayed: %v", err)
	}
	if got := r["temperature"].Number(); got != 25.08 {
		t.Errorf("temperature = %v °C, datasheet says 25.08", got)
	}
	if got := r["pressure"].Number(); math.Round(got) != 100653 {
		t.Errorf("pressure = %v Pa, datasheet says 100653", got)
	}
	if got := r["humidity"].Number(); got <= 0 || got >= 100 {
		t.Errorf("humidity = %v %%RH, want a value within 0…100", got)
	}
}

func TestCompensationMatchesDatasheet(t *testing.T) {
	tp, h := chips.DatasheetCalibration().Bytes()
	c := parseCalibration(tp, h)
	centi, tFine := c.compensateT(519888)
	if centi != 2508 || tFine != 128422 {
		t.Errorf("compensateT(519888) = %d, t_fine %d; datasheet: 2508, 128422", centi, tFine)
	}
	// The datasheet's floating-point example gives 100653.27 Pa; the
	// 64-bit integer code agrees within its 1/256 Pa resolution and the
	// integer rounding of its intermediate steps.
	if p := float64(c.compensateP(415148, tFine)) / 256; math.Abs(p-100653.27) > 0.05 {
		t.Errorf("compensateP = %v Pa, datasheet: 100653.27", p)
	}
	want := chips.DatasheetCalibration()
	if c.H2 != want.H2 || c.H4 != want.H4 || c.H5 != want.H5 || c.H6 != want.H6 || c.H1 != want.H1 {
		t.Errorf("humidity calibration parsed as %+v, want %+v", c, want)
	}
}

func TestModelRoundTrip(t *testing.T) {
	for _, tc := range []struct{ t, p, h float64 }{
		{21.5, 98765.4, 45.2}, {-12.34, 80000, 5}, {60, 105000, 95.5}, {25, 101325, 50},
	} {
		bus := chips.NewBus()
		chip := chips.NewBME280(chips.DatasheetCalibration())
		bus.Attach(0x77, chip)
		o := opts()
		o.Address = 0x77
		o.Oversampling = 4
		d, err := New(ctx(t), bus, BME280, o)
		if err != nil {
			t.Fatal(err)
		}
		chip.SetTemperature(tc.t)
		chip.SetPressure(tc.p)
		chip.SetHumidity(tc.h)
		r, err := d.Read(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		near(t, "temperature", r["temperature"].Number(), tc.t, 0.01)
		near(t, "pressure", r["pressure"].Number(), tc.p, 0.2)
		near(t, "humidity", r["humidity"].Number(), tc.h, 0.01)
		if got := chip.Register(0xF4); got != 0x6C { // ×4/×4, back in sleep mode
			t.Errorf("ctrl_meas after read = 0x%02x, want 0x6c (osrs ×4, sleep)", got)
		}
		if chip.Measurements() != 1 {
			t.Errorf("chip ran %d measurements for one Read", chip.Measurements())
		}
	}
}

// TestPeriphAgrees checks the chip model with an independent
// implementation: periph's bmxx80 driver reads the same values.
func TestPeriphAgrees(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewBME280(chips.DatasheetCalibration())
	bus.Attach(0x76, chip)
	chip.SetTemperature(23.45)
	chip.SetPressure(99876)
	chip.SetHumidity(61.5)
	pd, err := bmxx80.NewI2C(bus, 0x76, &bmxx80.Opts{Temperature: bmxx80.O1x, Pressure: bmxx80.O1x, Humidity: bmxx80.O1x})
	if err != nil {
		t.Fatal(err)
	}
	var e physic.Env
	if err := pd.Sense(&e); err != nil {
		t.Fatal(err)
	}
	near(t, "periph temperature", e.Temperature.Celsius(), 23.45, 0.01)
	near(t, "periph pressure", float64(e.Pressure)/float64(physic.Pascal), 99876, 0.2)
	near(t, "periph humidity", float64(e.Humidity)/float64(physic.PercentRH), 61.5, 0.01)
}

func TestBMP280(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewBMP280(chips.DatasheetCalibration())
	bus.Attach(0x76, chip)
	chip.SetTemperature(30)
	chip.SetPressure(90000)
	d, err := New(ctx(t), bus, BMP280, opts())
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r["humidity"]; ok || len(d.Properties()) != 2 {
		t.Errorf("bmp280 reports humidity: %v", r)
	}
	near(t, "temperature", r["temperature"].Number(), 30, 0.01)
	near(t, "pressure", r["pressure"].Number(), 90000, 0.2)
}

func TestErrors(t *testing.T) {
	t.Run("wrong chip", func(t *testing.T) {
		bus := chips.NewBus()
		bus.Attach(0x76, chips.NewBMP280(chips.DatasheetCalibration()))
		_, err := New(ctx(t), bus, BME280, opts())
		if !errors.Is(err, devices.ErrWrongChip) || !strings.Contains(err.Error(), "use driver bmp280") {
			t.Errorf("BME280 driver on a BMP280: %v", err)
		}
		chip := chips.NewBME280(chips.DatasheetCalibration())
		chip.SetChipID(0x42)
		bus.Attach(0x76, chip)
		if _, err := New(ctx(t), bus, BME280, opts()); !errors.Is(err, devices.ErrWrongChip) {
			t.Errorf("chip id 0x42: %v", err)
		}
	})
	t.Run("nack", func(t *testing.T) {
		_, err := New(ctx(t), chips.NewBus(), BME280, opts())
		if !errors.Is(err, hal.ErrNACK) || !strings.Contains(err.Error(), "0x76") {
			t.Errorf("no chip: %v", err)
		}
	})
	t.Run("nack during read", func(t *testing.T) {
		bus := chips.NewBus()
		chip := chips.NewBME280(chips.DatasheetCalibration())
		bus.Attach(0x76, chip)
		d, err := New(ctx(t), bus, BME280, opts())
		if err != nil {
			t.Fatal(err)
		}
		chip.FailNext(1, hal.ErrNACK)
		if r, err := d.Read(ctx(t)); !errors.Is(err, hal.ErrNACK) || r != nil {
			t.Errorf("Read with a NACK = %v, %v", r, err)
		}
		if _, err := d.Read(ctx(t)); err != nil {
			t.Errorf("Read after the fault: %v", err)
		}
	})
	t.Run("stuck measuring", func(t *testing.T) {
		bus := chips.NewBus()
		chip := chips.NewBME280(chips.DatasheetCalibration())
		bus.Attach(0x76, chip)
		d, err := New(ctx(t), bus, BME280, opts())
		if err != nil {
			t.Fatal(err)
		}
		chip.SetBusy(3)
		if _, err := d.Read(ctx(t)); err != nil {
			t.Errorf("Read while busy for 3 polls: %v", err)
		}
		chip.SetBusy(1000)
		if _, err := d.Read(ctx(t)); !errors.Is(err, hal.ErrTimeout) {
			t.Errorf("Read of a stuck chip: %v, want hal.ErrTimeout", err)
		}
	})
	t.Run("chip reset between reads", func(t *testing.T) {
		bus := chips.NewBus()
		chip := chips.NewBME280(chips.DatasheetCalibration())
		bus.Attach(0x76, chip)
		d, err := New(ctx(t), bus, BME280, opts())
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Tx(0x76, []byte{0xE0, 0xB6}, nil); err != nil {
			t.Fatal(err)
		}
		chip.SetHumidity(33)
		r, err := d.Read(ctx(t))
		if err != nil {
			t.Fatalf("Read after a chip reset: %v", err)
		}
		near(t, "humidity", r["humidity"].Number(), 33, 0.01)
	})
	t.Run("cancelled", func(t *testing.T) {
		bus := chips.NewBus()
		bus.Attach(0x76, chips.NewBME280(chips.DatasheetCalibration()))
		d, err := New(ctx(t), bus, BME280, opts())
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := d.Read(c); !errors.Is(err, context.Canceled) {
			t.Errorf("Read with a cancelled context: %v", err)
		}
	})
	t.Run("read only", func(t *testing.T) {
		bus := chips.NewBus()
		bus.Attach(0x76, chips.NewBME280(chips.DatasheetCalibration()))
		d, err := New(ctx(t), bus, BME280, opts())
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Write(ctx(t), "temperature", devices.Number(20)); !errors.Is(err, devices.ErrReadOnly) {
			t.Errorf("Write temperature: %v", err)
		}
	})
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"ok", func(*Options) {}, ""},
		{"address", func(o *Options) { o.Address = 0x40 }, "0x40 is not a BME280/BMP280 address"},
		{"bus", func(o *Options) { o.Bus = "" }, "bus is required"},
		{"oversampling", func(o *Options) { o.Oversampling = 3 }, "oversampling 3"},
		{"filter", func(o *Options) { o.Filter = 5 }, "filter 5"},
	} {
		o := opts()
		tc.mod(&o)
		err := o.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrInvalidOptions mentioning %q", tc.name, err, tc.want)
		}
	}
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %v, want %v ± %v", what, got, want, tol)
	}
}
