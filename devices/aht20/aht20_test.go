package aht20

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

// TestTranscript: datasheet §6: S_RH = 0x80000 is 50 %RH and
// S_T = 0x66666 is 0x66666/2^20·200 − 50 = 30 °C.
func TestTranscript(t *testing.T) {
	data := []byte{0x1C, 0x80, 0x00, 0x06, 0x66, 0x66}
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x38, W: []byte{0x71}, R: []byte{0x18}},
		{Addr: 0x38, W: []byte{0xAC, 0x33, 0x00}},
		{Addr: 0x38, R: append(data, chips.SensirionCRC8(data))},
	}}
	d, err := New(ctx(t), bus, opts())
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
	if r["humidity"].Number() != 50 || r["temperature"].Number() != 30 {
		t.Errorf("readings %v, want 50 %%RH and 30 °C", r)
	}
}

func TestModel(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewAHT20()
	chip.SetCalibrated(false)
	bus.Attach(0x38, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	chip.SetTemperature(-5.25)
	chip.SetHumidity(72.5)
	chip.SetBusy(2) // still converting on the first read after 80 ms
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(r["temperature"].Number()+5.25) > 0.01 || math.Abs(r["humidity"].Number()-72.5) > 0.01 {
		t.Errorf("readings %v, want −5.25 °C and 72.5 %%RH", r)
	}
}

func TestErrors(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewAHT20()
	bus.Attach(0x38, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	chip.CorruptNextCRC()
	if _, err := d.Read(ctx(t)); !errors.Is(err, devices.ErrChecksum) {
		t.Errorf("bad CRC: %v", err)
	}
	chip.FailNext(1, hal.ErrNACK)
	if _, err := d.Read(ctx(t)); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("NACK: %v", err)
	}
	if _, err := New(ctx(t), chips.NewBus(), opts()); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("no chip: %v", err)
	}
	o := opts()
	o.Address = 0x39
	if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) {
		t.Errorf("address 0x39: %v", err)
	}
}
