package mcp23017

import (
	"context"
	"errors"
	"strings"
	"sync"
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
	o.Lines = []Line{
		{Line: "A0", Name: "relay", Mode: "output", ActiveLow: true, Initial: false},
		{Line: "A1", Name: "lamp", Mode: "output", Initial: true},
		{Line: "B7", Name: "door", Mode: "input", Pull: "up", ActiveLow: true},
		{Line: "GPB0", Mode: "input"},
	}
	return o
}

// TestInitTranscript: the relay (active low, off) latches high and the
// lamp (on) latches high before IODIR makes A0/A1 outputs (0xFC).
func TestInitTranscript(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x21, W: []byte{0x05, 0x00}},
		{Addr: 0x21, W: []byte{0x0A, 0x00}},
		{Addr: 0x21, W: []byte{0x02, 0, 0, 0, 0}},
		{Addr: 0x21, W: []byte{0x14, 0x03, 0x00}},
		{Addr: 0x21, W: []byte{0x0C, 0x00, 0x80}},
		{Addr: 0x21, W: []byte{0x00, 0xFC, 0xFF}},
		{Addr: 0x21, W: []byte{0x00}, R: []byte{0xFC, 0xFF}},
		{Addr: 0x21, W: []byte{0x14, 0x02}}, // relay on: A0 low
	}}
	o := opts()
	o.Address = 0x21
	d, err := New(ctx(t), bus, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(ctx(t), "relay", devices.Bool(true)); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestModel(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewMCP23017()
	bus.Attach(0x20, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	if lvl, out := chip.Output(0); !out || !lvl {
		t.Errorf("relay pin: output %v level %v, want output driven high (off, active low)", out, lvl)
	}
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := devices.Readings{"relay": devices.Bool(false), "lamp": devices.Bool(true), "door": devices.Bool(false), "b0": devices.Bool(false)}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, r[k], v, r)
		}
	}
	chip.SetInput(15, false) // door contact closes to ground
	chip.SetInput(8, true)
	if err := d.Write(ctx(t), "relay", devices.Bool(true)); err != nil {
		t.Fatal(err)
	}
	if lvl, _ := chip.Output(0); lvl {
		t.Error("relay on should drive A0 low")
	}
	r, err = d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !r["door"].Bool() || !r["b0"].Bool() || !r["relay"].Bool() || !r["lamp"].Bool() {
		t.Errorf("after changes: %v", r)
	}
	if err := d.Write(ctx(t), "door", devices.Bool(true)); !errors.Is(err, devices.ErrReadOnly) {
		t.Errorf("write to an input: %v", err)
	}
}

// TestConcurrentWrites: lines of one port written at once must not lose
// each other's update (periph's mcp23xxx races here).
func TestConcurrentWrites(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewMCP23017()
	bus.Attach(0x20, chip)
	o := opts()
	o.Lines = nil
	for _, l := range []string{"A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7"} {
		o.Lines = append(o.Lines, Line{Line: l, Mode: "output"})
	}
	d, err := New(ctx(t), bus, o)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, l := range o.Lines {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			if err := d.Write(ctx(t), name, devices.Bool(true)); err != nil {
				t.Error(err)
			}
		}(strings.ToLower(l.Line))
	}
	wg.Wait()
	if got := chip.Register(0x14); got != 0xFF {
		t.Errorf("OLATA = 0x%02x after setting all 8 lines concurrently, want 0xff", got)
	}
}

func TestChipResetIsRepaired(t *testing.T) {
	bus := chips.NewBus()
	chip := chips.NewMCP23017()
	bus.Attach(0x20, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(ctx(t), "relay", devices.Bool(true)); err != nil {
		t.Fatal(err)
	}
	chip.Reset()
	r, err := d.Read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !r["relay"].Bool() {
		t.Errorf("relay after a chip reset reads %v, want the state we set (restored)", r["relay"])
	}
	if lvl, out := chip.Output(0); !out || lvl {
		t.Errorf("relay pin after repair: output %v level %v, want output low", out, lvl)
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(ctx(t), chips.NewBus(), opts()); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("no chip: %v", err)
	}
	bus := chips.NewBus()
	chip := chips.NewMCP23017()
	bus.Attach(0x20, chip)
	d, err := New(ctx(t), bus, opts())
	if err != nil {
		t.Fatal(err)
	}
	chip.FailNext(1, hal.ErrNACK)
	if _, err := d.Read(ctx(t)); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("NACK: %v", err)
	}
	chip.FailNext(1, hal.ErrNACK)
	if err := d.Write(ctx(t), "lamp", devices.Bool(false)); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("NACK on write: %v", err)
	}
	if r, _ := d.Read(ctx(t)); !r["lamp"].Bool() {
		t.Error("a failed write must not change what the device reports")
	}
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Address = 0x28 }, "0x28"},
		{func(o *Options) { o.Lines = []Line{{Line: "C0", Mode: "input"}} }, "C0"},
		{func(o *Options) { o.Lines = []Line{{Line: "A8", Mode: "input"}} }, "A8"},
		{func(o *Options) { o.Lines = []Line{{Line: "A0", Mode: "input", Pull: "down"}} }, "pull-down"},
		{func(o *Options) { o.Lines = []Line{{Line: "A0", Mode: "pwm"}} }, "mode"},
		{func(o *Options) { o.Lines = []Line{{Line: "A0", Mode: "input"}, {Line: "gpa0", Mode: "input"}} }, "twice"},
	} {
		o := opts()
		tc.mod(&o)
		if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalidOptions mentioning %q", o, err, tc.want)
		}
	}
	if props, err := Driver().Properties(&Options{Bus: "1", Address: 0x20}); err != nil || len(props) != 16 || props[15].Name != "b7" {
		t.Errorf("default lines: %v, %v", props, err)
	}
}
