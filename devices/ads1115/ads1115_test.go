package ads1115

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

func opts() Options { o := Defaults(); o.Bus = "1"; o.DataRate = 860; return o }

// TestTranscript: config 0xC5E3 is OS | MUX=100 (AIN0–GND) | PGA=010
// (±2.048 V) | single-shot | 860 SPS | comparator off (§8.6.3); code
// 0x4000 at ±2.048 V is 1.024 V and 0x8000 is −2.048 V (§8.3.3, table 3).
func TestTranscript(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x49, W: []byte{0x01}, R: []byte{0x85, 0x83}},
		{Addr: 0x49, W: []byte{0x01, 0xC5, 0xE3}},
		{Addr: 0x49, W: []byte{0x01}, R: []byte{0x45, 0xE3}}, // OS=0: busy
		{Addr: 0x49, W: []byte{0x01}, R: []byte{0xC5, 0xE3}},
		{Addr: 0x49, W: []byte{0x00}, R: []byte{0x40, 0x00}},
		{Addr: 0x49, W: []byte{0x01, 0x85, 0xE3}}, // MUX=000: AIN0–AIN1
		{Addr: 0x49, W: []byte{0x01}, R: []byte{0x85, 0xE3}},
		{Addr: 0x49, W: []byte{0x00}, R: []byte{0x80, 0x00}},
	}}
	o := opts()
	o.Address = 0x49
	o.Channels = []Channel{{"single", "0", 2.048}, {"diff", "0-1", 2.048}}
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
	if r["single"].Number() != 1.024 || r["diff"].Number() != -2.048 {
		t.Errorf("readings %v, want single 1.024 V, diff −2.048 V", r)
	}
}

func TestModel(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewADS1115()
	bus.Attach(0x48, chip)
	o := opts()
	o.Channels = []Channel{{"a0", "0", 4.096}, {"a1", "1", 0.256}, {"a2", "2", 6.144}, {"a3", "3", 4.096}, {"d", "2-3", 2.048}}
	d, err := New(ctx(t), bus, o)
	if err != nil {
		t.Fatal(err)
	}
	chip.SetVoltage(0, 1.0) // 8000 LSB of 125 µV
	chip.SetVoltage(1, 0.1) // ±0.256 V: 7.8125 µV LSB
	chip.SetVoltage(2, 3.3) // ±6.144 V
	chip.SetVoltage(3, 5.0) // beyond ±4.096 V: saturates at 0x7FFF
	chip.SetBusy(3)         // each conversion slower than nominal
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"a0": 1.0, "a1": 0.1, "a2": 3.3, "a3": 4.096 * 32767 / 32768, "d": -1.7} {
		fs := map[string]float64{"a0": 4.096, "a1": 0.256, "a2": 6.144, "a3": 4.096, "d": 2.048}[name]
		if got := r[name].Number(); math.Abs(got-want) > fs/32768 {
			t.Errorf("%s = %v V, want %v (± 1 LSB)", name, got, want)
		}
	}
	if got := chip.Conversions(); got != 5 {
		t.Errorf("chip ran %d conversions, want 5", got)
	}
}

// TestStaleConversionNotReported: with a conversion slower than nominal,
// the previous channel's result must not be reported for the next one.
func TestStaleConversionNotReported(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewADS1115()
	bus.Attach(0x48, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	chip.SetVoltage(0, 3.0)
	chip.SetVoltage(1, 0.5)
	chip.SetBusy(2)
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := r["a1"].Number(); math.Abs(got-0.5) > 0.001 {
		t.Errorf("a1 = %v V, want 0.5 (3.0 would be a0's stale result)", got)
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(ctx(t), chips.NewBus(), opts()); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("no chip: %v", err)
	}
	bus := chips.NewBus()
	chip := chips.NewADS1115()
	bus.Attach(0x48, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	chip.SetBusy(1000)
	if _, err := d.Read(ctx(t)); !errors.Is(err, hal.ErrTimeout) {
		t.Errorf("stuck conversion: %v", err)
	}
	chip.SetBusy(0)
	chip.FailNext(1, hal.ErrNACK)
	if _, err := d.Read(ctx(t)); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("NACK: %v", err)
	}
	for _, bad := range []func(*Options){
		func(o *Options) { o.Address = 0x47 },
		func(o *Options) { o.DataRate = 100 },
		func(o *Options) { o.Channels = []Channel{{"x", "4", 4.096}} },
		func(o *Options) { o.Channels = []Channel{{"x", "0", 5}} },
		func(o *Options) { o.Channels = []Channel{{"x", "0", 4.096}, {"x", "1", 4.096}} },
		func(o *Options) { o.Channels = []Channel{{"", "0", 4.096}} },
	} {
		o := opts()
		bad(&o)
		if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
}
