package pca9685

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

func TestPrescaleDatasheet(t *testing.T) {
	// §7.3.5: "prescale value = round(25 MHz / (4096 × 200 Hz)) − 1 = 30
	// (1Eh)", which is also the reset value.
	for hz, want := range map[float64]byte{200: 0x1E, 50: 121, 1526: 3, 24: 253, 1000: 5} {
		if got := prescaleFor(hz); got != want {
			t.Errorf("prescaleFor(%v) = %d, want %d", hz, got, want)
		}
	}
}

func TestDutyDatasheetExample(t *testing.T) {
	// §7.3.3 example 1: 10 % delay, 20 % duty: LED0_ON = 409 (0x199),
	// LED0_OFF = 1228 (0x4CC).
	if got := duty([]byte{0x99, 0x01, 0xCC, 0x04}); math.Abs(got-0.2) > 1.0/4096 {
		t.Errorf("duty(ON=0x199, OFF=0x4CC) = %v, want 0.2", got)
	}
	if got := duty([]byte{0, fullBit, 0, fullBit}); got != 0 {
		t.Errorf("full on and full off together = %v, full off must win", got)
	}
}

func TestInitTranscript(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x41, W: []byte{0x00, 0x30}},
		{Addr: 0x41, W: []byte{0xFE, 0x1E}},
		{Addr: 0x41, W: []byte{0x01, 0x04}},
		{Addr: 0x41, W: []byte{0xFA, 0x00, 0x00, 0x00, 0x10}},
		{Addr: 0x41, W: []byte{0x00, 0x20}},
		{Addr: 0x41, W: []byte{0x00}, R: []byte{0x20}},
		{Addr: 0x41, W: []byte{0xFE}, R: []byte{0x1E}},
		// ch3 to 25 %: ON = 0, OFF = 1024.
		{Addr: 0x41, W: []byte{0x12, 0x00, 0x00, 0x00, 0x04}},
	}}
	o := opts()
	o.Address, o.Frequency = 0x41, 200
	d, err := New(ctx(t), bus, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(ctx(t), "ch3", devices.Number(25)); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestModel(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewPCA9685()
	bus.Attach(0x40, chip)
	o := opts()
	o.Channels = []Channel{{Channel: 0, Name: "lamp"}, {Channel: 1}, {Channel: 15, Name: "pan", Kind: "servo"}}
	d, err := New(ctx(t), bus, o)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(chip.Frequency()-50) > 0.1 || math.Abs(d.Frequency()-chip.Frequency()) > 1e-6 {
		t.Errorf("frequency: chip %v Hz, driver %v Hz, want ≈ 50", chip.Frequency(), d.Frequency())
	}
	if chip.Sleeping() {
		t.Error("chip still asleep after New")
	}
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if r["lamp"].Number() != 0 || r["ch1"].Number() != 0 {
		t.Errorf("after New: %v, want every channel off", r)
	}
	if _, ok := r["pan"]; ok {
		t.Errorf("undriven servo reports an angle: %v", r)
	}
	for _, w := range []struct {
		prop string
		v    float64
	}{{"lamp", 33.3}, {"ch1", 100}, {"pan", 90}} {
		if err := d.Write(ctx(t), w.prop, devices.Number(w.v)); err != nil {
			t.Fatal(err)
		}
	}
	if got := chip.Duty(0); math.Abs(got-0.333) > 1.0/4096 {
		t.Errorf("lamp duty on the chip = %v, want 0.333", got)
	}
	if chip.Duty(1) != 1 || chip.Register(0x06+4+1)&0x10 == 0 {
		t.Errorf("100 %% should use the full-on bit: duty %v", chip.Duty(1))
	}
	if got := chip.Pulse(15); (got - 1500*time.Microsecond).Abs() > 5*time.Microsecond {
		t.Errorf("servo pulse on the chip = %v, want 1.5 ms ± 1 tick", got)
	}
	r, err = d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := devices.Readings{"lamp": devices.Number(33.3), "ch1": devices.Number(100), "pan": devices.Number(90)}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("read back %s = %v, want %v", k, r[k], v)
		}
	}
	// Someone else changes channel 0: the read shows the register value.
	if err := bus.Tx(0x40, []byte{0x06, 0, 0, 0x00, 0x08}, nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := d.Read(ctx(t)); r["lamp"].Number() != 50 {
		t.Errorf("lamp after an external change to 50 %% reads %v", r["lamp"])
	}
	if err := d.Write(ctx(t), "pan", devices.Number(181)); !errors.Is(err, devices.ErrInvalidValue) {
		t.Errorf("angle 181: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !chip.Sleeping() || chip.Duty(1) != 0 {
		t.Errorf("after Close: sleeping %v, ch1 duty %v", chip.Sleeping(), chip.Duty(1))
	}
}

func TestChipResetIsRepaired(t *testing.T) {
	bus := chips.NewBus()
	bus.Attach(0x40, chips.NewPCA9685())
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(ctx(t), "ch0", devices.Number(40)); err != nil {
		t.Fatal(err)
	}
	fresh := chips.NewPCA9685() // a power cycle: reset registers
	bus.Attach(0x40, fresh)
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if r["ch0"].Number() != 0 {
		t.Errorf("after a chip reset ch0 reads %v, want 0 (so reconcile rewrites it)", r["ch0"])
	}
	if fresh.Sleeping() || math.Abs(fresh.Frequency()-50) > 0.1 {
		t.Errorf("chip not set up again: sleeping %v, %v Hz", fresh.Sleeping(), fresh.Frequency())
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(ctx(t), chips.NewBus(), opts()); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("no chip: %v", err)
	}
	// A device that ACKs but does not keep the configuration.
	notPCA := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x40, W: []byte{0x00, 0x30}}, {Addr: 0x40, W: []byte{0xFE, 0x79}}, {Addr: 0x40, W: []byte{0x01, 0x04}},
		{Addr: 0x40, W: []byte{0xFA, 0, 0, 0, 0x10}}, {Addr: 0x40, W: []byte{0x00, 0x20}},
		{Addr: 0x40, W: []byte{0x00}, R: []byte{0xFF}}, {Addr: 0x40, W: []byte{0xFE}, R: []byte{0xFF}},
	}}
	if _, err := New(ctx(t), notPCA, opts()); !errors.Is(err, devices.ErrWrongChip) {
		t.Errorf("not a PCA9685: %v", err)
	}
	bus := chips.NewBus()
	chip := chips.NewPCA9685()
	bus.Attach(0x40, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	chip.FailNext(1, hal.ErrNACK)
	if err := d.Write(ctx(t), "ch2", devices.Number(10)); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("NACK on write: %v", err)
	}
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Address = 0x70 }, "0x70"},
		{func(o *Options) { o.Address = 0x3F }, "0x3f"},
		{func(o *Options) { o.Frequency = 20 }, "frequency 20"},
		{func(o *Options) { o.Channels = []Channel{{Channel: 16}} }, "channel 16"},
		{func(o *Options) { o.Channels = []Channel{{Channel: 1}, {Channel: 1}} }, "twice"},
		{func(o *Options) { o.Channels = []Channel{{Channel: 1, Kind: "led"}} }, "kind"},
		{func(o *Options) { o.Frequency = 1000; o.Channels = []Channel{{Channel: 1, Kind: "servo"}} }, "PWM period"},
	} {
		o := opts()
		tc.mod(&o)
		if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalidOptions mentioning %q", o, err, tc.want)
		}
	}
}
