package bh1750

import (
	"context"
	"errors"
	"math"
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

// TestDatasheetExample: "High Byte = 1000_0011, Low Byte = 1001_0000 →
// (2^15 + 2^9 + 2^8 + 2^7 + 2^4) / 1.2 ≈ 28067 [lx]" (datasheet p.7).
func TestDatasheetExample(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x5C, W: []byte{0x01}},
		{Addr: 0x5C, W: []byte{0x07}},
		{Addr: 0x5C, W: []byte{0x42}}, // MTreg 69 = 0b010_00101
		{Addr: 0x5C, W: []byte{0x65}},
		{Addr: 0x5C, W: []byte{0x20}},
		{Addr: 0x5C, R: []byte{0x83, 0x90}},
	}}
	o := opts()
	o.Address = 0x5C
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
	if got := r["illuminance"].Number(); math.Round(got) != 28067 {
		t.Errorf("illuminance = %v lx, datasheet says ≈ 28067", got)
	}
}

func TestModel(t *testing.T) {
	for _, tc := range []struct {
		mode string
		mt   int
		lux  float64
		tol  float64
	}{
		{"low", 69, 1234, 4},
		{"high2", 69, 321.5, 0.5},
		{"low", 254, 99.5, 1.1}, // MTreg 254: more counts per lx
	} {
		bus := chips.NewBus()
		chip := chips.NewBH1750()
		bus.Attach(0x23, chip)
		o := opts()
		o.Mode, o.MTreg = tc.mode, tc.mt
		d, err := New(ctx(t), bus, o)
		if err != nil {
			t.Fatal(err)
		}
		if chip.MTreg() != tc.mt {
			t.Errorf("chip MTreg = %d, want %d", chip.MTreg(), tc.mt)
		}
		chip.SetLux(tc.lux)
		r, err := d.Read(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := r["illuminance"].Number(); math.Abs(got-tc.lux) > tc.tol {
			t.Errorf("%s/MT %d: set %v lx, read %v", tc.mode, tc.mt, tc.lux, got)
		}
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(ctx(t), chips.NewBus(), opts()); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("no chip: %v", err)
	}
	bus := chips.NewBus()
	chip := chips.NewBH1750()
	bus.Attach(0x23, chip)
	o := opts()
	o.Mode = "low"
	d, err := New(ctx(t), bus, o)
	if err != nil {
		t.Fatal(err)
	}
	chip.FailNext(1, hal.ErrTimeout)
	if _, err := d.Read(ctx(t)); !errors.Is(err, hal.ErrTimeout) {
		t.Errorf("timeout: %v", err)
	}
	for _, bad := range []func(*Options){
		func(o *Options) { o.Address = 0x24 },
		func(o *Options) { o.Mode = "continuous" },
		func(o *Options) { o.MTreg = 30 },
		func(o *Options) { o.MTreg = 255 },
	} {
		o := opts()
		bad(&o)
		if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
