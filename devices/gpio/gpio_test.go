package gpio

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func registry(t *testing.T) *devices.Registry {
	r, err := devices.NewRegistry(Drivers()...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRelayActiveLow(t *testing.T) {
	h := fake.New()
	defer h.Close()
	d, err := registry(t).Open(ctx(t), "relay", devices.Env{Lines: h}, &OutputOptions{Pin: "GPIO17", ActiveLow: true})
	if err != nil {
		t.Fatal(err)
	}
	if hist := h.PhysicalHistory("GPIO17"); len(hist) == 0 || !hist[0] {
		t.Errorf("wire history %v: an active-low relay must come up high (off) without a low glitch", hist)
	}
	if err := d.Write(ctx(t), "on", devices.Bool(true)); err != nil {
		t.Fatal(err)
	}
	if high, _ := h.Physical("GPIO17"); high {
		t.Error("relay on: wire is high, want low (active low)")
	}
	r, err := d.Read(ctx(t))
	if err != nil || !r["on"].Bool() {
		t.Errorf("Read = %v, %v; want on", r, err)
	}
	for _, tc := range []struct {
		prop string
		v    devices.Value
		want error
	}{
		{"on", devices.Number(1), devices.ErrInvalidValue},
		{"off", devices.Bool(true), devices.ErrUnknownProperty},
	} {
		if err := d.Write(ctx(t), tc.prop, tc.v); !errors.Is(err, tc.want) {
			t.Errorf("Write(%s, %v) = %v, want %v", tc.prop, tc.v, err, tc.want)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(ctx(t), "on", devices.Bool(false)); !errors.Is(err, hal.ErrClosed) {
		t.Errorf("Write after Close = %v, want hal.ErrClosed", err)
	}
}

func TestLEDInitialOn(t *testing.T) {
	h := fake.New()
	defer h.Close()
	d, err := registry(t).Open(ctx(t), "led", devices.Env{Lines: h}, &OutputOptions{Pin: "GPIO5", Initial: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if r, _ := d.Read(ctx(t)); !r["on"].Bool() {
		t.Errorf("LED with initial true reads %v", r)
	}
	if high, _ := h.Physical("GPIO5"); !high {
		t.Error("LED initial on: wire low")
	}
}

func TestOutputSetError(t *testing.T) {
	h := fake.New()
	defer h.Close()
	d, err := registry(t).Open(ctx(t), "relay", devices.Env{Lines: h}, &OutputOptions{Pin: "GPIO17"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h.SetError("GPIO17", hal.ErrTimeout)
	if err := d.Write(ctx(t), "on", devices.Bool(true)); !errors.Is(err, hal.ErrTimeout) || !strings.Contains(err.Error(), "GPIO17") {
		t.Errorf("Write on a failing line: %v", err)
	}
}

func TestButtonReadAndWatch(t *testing.T) {
	h := fake.New()
	defer h.Close()
	reg := registry(t)
	drv, err := reg.Lookup("button")
	if err != nil {
		t.Fatal(err)
	}
	o := drv.NewOptions().(*InputOptions)
	o.Pin = "GPIO27"
	o.Debounce = time.Millisecond
	if err := h.SetInput("GPIO27", true); err != nil { // released: pulled up
		t.Fatal(err)
	}
	d, err := drv.Open(ctx(t), devices.Env{Lines: h}, o)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if r, err := d.Read(ctx(t)); err != nil || r["pressed"].Bool() {
		t.Errorf("released button reads %v, %v", r, err)
	}
	if err := h.SetInput("GPIO27", false); err != nil {
		t.Fatal(err)
	}
	if r, err := d.Read(ctx(t)); err != nil || !r["pressed"].Bool() {
		t.Errorf("pressed button reads %v, %v", r, err)
	}

	w, ok := d.(devices.Watcher)
	if !ok {
		t.Fatal("button does not implement devices.Watcher")
	}
	wctx, cancel := context.WithCancel(ctx(t))
	got := make(chan devices.Readings, 4)
	done := make(chan error, 1)
	go func() { done <- w.Watch(wctx, func(r devices.Readings) { got <- r }) }()
	for i, want := range []bool{true, false} {
		select {
		case r := <-got:
			if r["pressed"].Bool() != want {
				t.Errorf("edge %d: %v, want pressed=%v", i, r, want)
			}
		case <-ctx(t).Done():
			t.Fatalf("edge %d not reported", i)
		}
		if i == 0 {
			if err := h.SetInput("GPIO27", true); err != nil {
				t.Fatal(err)
			}
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch after cancel = %v", err)
	}
}

func TestInputDefaultsAndValidation(t *testing.T) {
	reg := registry(t)
	for name, want := range map[string]InputOptions{
		"button": {ActiveLow: true, Pull: "up", Debounce: 20 * time.Millisecond},
		"switch": {ActiveLow: true, Pull: "up", Debounce: 20 * time.Millisecond},
		"pir":    {Pull: "none"},
	} {
		drv, err := reg.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := *drv.NewOptions().(*InputOptions); got != want {
			t.Errorf("%s defaults %+v, want %+v", name, got, want)
		}
	}
	for _, tc := range []struct {
		o    InputOptions
		want string
	}{
		{InputOptions{}, "pin is required"},
		{InputOptions{Pin: "GPIO4", Pull: "sideways"}, "pull"},
		{InputOptions{Pin: "GPIO4", Debounce: -time.Millisecond}, "debounce"},
		{InputOptions{Pin: "GPIO4", Debounce: 20 * time.Second}, "debounce"},
	} {
		if err := tc.o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalidOptions mentioning %q", tc.o, err, tc.want)
		}
	}
	if err := (&OutputOptions{}).Validate(); !errors.Is(err, devices.ErrInvalidOptions) {
		t.Errorf("output without pin: %v", err)
	}
	if cfg := (InputOptions{Pin: "x", Pull: "down", ActiveLow: true, Debounce: time.Millisecond}).InputConfig(); cfg != (hal.InputConfig{ActiveLow: true, Pull: hal.PullDown, Edge: hal.EdgeBoth, Debounce: time.Millisecond}) {
		t.Errorf("InputConfig = %+v", cfg)
	}
}

func TestPIRMotion(t *testing.T) {
	h := fake.New()
	defer h.Close()
	d, err := registry(t).Open(ctx(t), "pir", devices.Env{Lines: h}, &InputOptions{Pin: "GPIO22"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := h.SetInput("GPIO22", true); err != nil {
		t.Fatal(err)
	}
	if r, err := d.Read(ctx(t)); err != nil || !r["motion"].Bool() {
		t.Errorf("PIR high reads %v, %v", r, err)
	}
	if err := d.Write(ctx(t), "motion", devices.Bool(false)); !errors.Is(err, devices.ErrReadOnly) {
		t.Errorf("Write to PIR: %v", err)
	}
}
