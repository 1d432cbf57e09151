package sht3x

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

func opts() Options {
	o := Defaults()
	o.Bus = "1"
	return o
}

func TestCRCDatasheetExample(t *testing.T) {
	if got := CRC8([]byte{0xBE, 0xEF}); got != 0x92 {
		t.Errorf("CRC8(0xBEEF) = 0x%02x, datasheet §4.12 says 0x92", got)
	}
	if got := chips.SensirionCRC8([]byte{0xBE, 0xEF}); got != 0x92 {
		t.Errorf("chips.SensirionCRC8(0xBEEF) = 0x%02x", got)
	}
}

// TestTranscript: S_T = 0x6666 and S_RH = 0x8000 are, by §4.13,
// −45 + 175·26214/65535 = 24.999 °C and 100·32768/65535 = 50.0008 %RH.
func TestTranscript(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x45, W: []byte{0xF3, 0x2D}},
		{Addr: 0x45, R: []byte{0x80, 0x10, CRC8([]byte{0x80, 0x10})}},
		{Addr: 0x45, W: []byte{0x24, 0x16}},
		{Addr: 0x45, R: []byte{0x66, 0x66, CRC8([]byte{0x66, 0x66}), 0x80, 0x00, CRC8([]byte{0x80, 0x00})}},
	}}
	o := opts()
	o.Address = 0x45
	o.Repeatability = "low"
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
	if r["temperature"].Number() != 25 || r["humidity"].Number() != 50 {
		t.Errorf("readings %v, want 25 °C and 50 %%RH", r)
	}
}

func TestModel(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewSHT3x()
	bus.Attach(0x44, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ t, h float64 }{{-10.5, 12.3}, {21.37, 55.55}, {80, 99}} {
		chip.SetTemperature(tc.t)
		chip.SetHumidity(tc.h)
		r, err := d.Read(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r["temperature"].Number()-tc.t) > 0.01 || math.Abs(r["humidity"].Number()-tc.h) > 0.01 {
			t.Errorf("set %v °C %v %%RH, read %v", tc.t, tc.h, r)
		}
	}
}

func TestErrors(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewSHT3x()
	bus.Attach(0x44, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	chip.CorruptNextCRC()
	if r, err := d.Read(ctx(t)); !errors.Is(err, devices.ErrChecksum) || r != nil {
		t.Errorf("Read with a bad CRC = %v, %v; want ErrChecksum", r, err)
	}
	if _, err := d.Read(ctx(t)); err != nil {
		t.Errorf("Read after the bad CRC: %v", err)
	}
	chip.FailNext(1, hal.ErrNACK)
	if _, err := d.Read(ctx(t)); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("Read with a NACK: %v", err)
	}
	if _, err := New(ctx(t), chips.NewBus(), opts()); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("New with no chip: %v", err)
	}
	// A chip answering the status command with a bad CRC is not an SHT3x.
	bad := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x44, W: []byte{0xF3, 0x2D}}, {Addr: 0x44, R: []byte{0xFF, 0xFF, 0xFF}}}}
	if _, err := New(ctx(t), bad, opts()); !errors.Is(err, devices.ErrChecksum) {
		t.Errorf("New on a non-SHT3x: %v", err)
	}
	o := opts()
	o.Address = 0x40
	if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), "0x44") {
		t.Errorf("address 0x40: %v", err)
	}
	o = opts()
	o.Repeatability = "ultra"
	if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) {
		t.Errorf("repeatability ultra: %v", err)
	}
}
