package ina219

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func opts() Options { o := Defaults(); o.Bus = "1"; return o }

// datasheetOpts is the programming example of §8.5.1: 0.5 Ω shunt,
// Current_LSB = 20 µA (max current 0.65536 A), Cal = 4096, Power_LSB =
// 0.4 mW.
func datasheetOpts() Options {
	o := opts()
	o.ShuntOhms, o.MaxCurrent = 0.5, 0.65536
	return o
}

func TestCalibrationDatasheet(t *testing.T) {
	o := datasheetOpts()
	if got := o.calibration(); got != 4096 {
		t.Errorf("calibration = %d, datasheet example: 4096", got)
	}
	if got := o.CurrentLSB(); math.Abs(got-20e-6) > 1e-12 {
		t.Errorf("current LSB = %v, want 20 µA", got)
	}
	// 0.65536 A · 0.5 Ω = 328 mV: beyond ±320 mV, so the default (3.2 A,
	// 0.1 Ω = 320 mV) is the largest the chip takes. The example's
	// expected current is 0.6 A (300 mV): PGA /8.
	o.MaxCurrent = 0.6
	if got := o.Config(); got != 0x399F {
		t.Errorf("config for 32 V, 300 mV = 0x%04x, want 0x399f (the reset value)", got)
	}
	o = opts()
	o.BusRange, o.MaxCurrent = 16, 0.4 // 40 mV: PGA /1
	if got := o.Config(); got != 0x019F {
		t.Errorf("config for 16 V, 40 mV = 0x%04x, want 0x019f", got)
	}
}

// TestTranscript: 0.1 Ω and max_current 1.6384 A give Current_LSB =
// 50 µA and Cal = 0.04096/(50 µA · 0.1 Ω) = 8192 exactly, PGA /8 (164 mV),
// 32 V: config 0x399F. 12 V and 1 A then read as bus 3000 (<<3 = 0x5DC0,
// plus CNVR), current 0.1 V/10 µV · 8192/4096 = 20000 (0x4E20), power
// 20000 · 3000/5000 = 12000 (0x2EE0) at 1 mW/LSB → 12 V, 1 A, 12 W.
func TestTranscript(t *testing.T) {
	o := opts()
	o.Address, o.MaxCurrent = 0x45, 1.6384
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x45, W: []byte{0x00, 0x80, 0x00}},
		{Addr: 0x45, W: []byte{0x00, 0x39, 0x9F}},
		{Addr: 0x45, W: []byte{0x05, 0x20, 0x00}},
		{Addr: 0x45, W: []byte{0x00}, R: []byte{0x39, 0x9F}},
		{Addr: 0x45, W: []byte{0x05}, R: []byte{0x20, 0x00}},
		{Addr: 0x45, W: []byte{0x02}, R: []byte{0x5D, 0xC2}},
		{Addr: 0x45, W: []byte{0x04}, R: []byte{0x4E, 0x20}},
		{Addr: 0x45, W: []byte{0x03}, R: []byte{0x2E, 0xE0}},
	}}
	d, err := New(ctx(t), bus, o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if r["voltage"].Number() != 12 || r["current"].Number() != 1 || r["power"].Number() != 12 {
		t.Errorf("readings %v, want 12 V, 1 A, 12 W", r)
	}
}

func TestModel(t *testing.T) {
	for _, tc := range []struct {
		o         Options
		v, a      float64
		tolA      float64
		wantPower float64
	}{
		{opts(), 24, 1.5, 2e-4, 36},
		{opts(), 5.1, -0.25, 2e-4, 1.275},
		{datasheetOpts(), 12, 0.6, 2e-5, 7.2},
	} {
		if tc.o.MaxCurrent == 0.65536 {
			tc.o.MaxCurrent = 0.62
		}
		bus := chips.NewBus()
		chip := chips.NewINA219(tc.o.ShuntOhms)
		bus.Attach(0x40, chip)
		d, err := New(ctx(t), bus, tc.o)
		if err != nil {
			t.Fatal(err)
		}
		chip.SetBusVoltage(tc.v)
		chip.SetCurrent(tc.a)
		r, err := d.Read(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r["voltage"].Number()-tc.v) > 0.004 || math.Abs(r["current"].Number()-tc.a) > tc.tolA ||
			math.Abs(r["power"].Number()-tc.wantPower) > tc.wantPower*0.005 {
			t.Errorf("set %v V %v A: read %v", tc.v, tc.a, r)
		}
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(ctx(t), chips.NewBus(), opts()); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("no chip: %v", err)
	}
	bus := chips.NewBus()
	chip := chips.NewINA219(0.1)
	bus.Attach(0x40, chip)
	o := opts()
	o.MaxCurrent = 1
	d, err := New(ctx(t), bus, o)
	if err != nil {
		t.Fatal(err)
	}
	chip.SetBusVoltage(12)
	chip.SetCurrent(5) // 500 mV across 0.1 Ω: beyond the PGA range
	if _, err := d.Read(ctx(t)); !errors.Is(err, devices.ErrNotReady) || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("overflow: %v", err)
	}
	chip.SetCurrent(0.5)
	chip.FailNext(1, hal.ErrNACK)
	if _, err := d.Read(ctx(t)); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("NACK: %v", err)
	}
	// A power glitch resets the chip: calibration 0, current reads 0.
	if err := bus.Tx(0x40, []byte{0x00, 0x80, 0x00}, nil); err != nil {
		t.Fatal(err)
	}
	r, err := d.Read(ctx(t))
	if err != nil || math.Abs(r["current"].Number()-0.5) > 1e-4 {
		t.Errorf("after a chip reset: %v, %v; want 0.5 A (calibration rewritten)", r, err)
	}
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Address = 0x50 }, "0x50"},
		{func(o *Options) { o.ShuntOhms = 0 }, "shunt_ohms"},
		{func(o *Options) { o.MaxCurrent = -1 }, "max_current"},
		{func(o *Options) { o.BusRange = 24 }, "bus_range"},
		{func(o *Options) { o.MaxCurrent = 10 }, "320 mV"},
		{func(o *Options) { o.ShuntOhms, o.MaxCurrent = 100, 0.00001 }, "calibration"},
	} {
		o := opts()
		tc.mod(&o)
		if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalidOptions mentioning %q", o, err, tc.want)
		}
	}
}
