package devices_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
)

func TestPropertyCheck(t *testing.T) {
	num := devices.Property{Name: "level", Type: devices.TypeNumber, Unit: "%", Range: &devices.Range{Min: 0, Max: 100}}
	enum := devices.Property{Name: "mode", Type: devices.TypeEnum, Choices: []string{"auto", "manual"}}
	open := devices.Property{Name: "x", Type: devices.TypeNumber}
	for _, tc := range []struct {
		p    devices.Property
		v    devices.Value
		want string // "" = valid
	}{
		{num, devices.Number(0), ""},
		{num, devices.Number(100), ""},
		{num, devices.Number(100.5), "outside 0…100%"},
		{num, devices.Number(-1), "outside"},
		{num, devices.Number(math.NaN()), "not a finite number"},
		{num, devices.Bool(true), "takes a number, got bool"},
		{num, devices.Value{}, "got no value"},
		{open, devices.Number(-1e9), ""},
		{open, devices.Number(math.Inf(1)), "finite"},
		{enum, devices.Enum("auto"), ""},
		{enum, devices.Enum("off"), `"off" is not one of auto, manual`},
		{enum, devices.Number(1), "takes a enum"},
	} {
		err := tc.p.Check(tc.v)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s.Check(%v) = %v", tc.p.Name, tc.v, err)
			}
			continue
		}
		if !errors.Is(err, devices.ErrInvalidValue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s.Check(%v) = %v, want ErrInvalidValue mentioning %q", tc.p.Name, tc.v, err, tc.want)
		}
	}
}

func TestValue(t *testing.T) {
	for _, tc := range []struct {
		v    devices.Value
		any  any
		str  string
		kind devices.Type
	}{
		{devices.Bool(true), true, "true", devices.TypeBool},
		{devices.Number(21.5), 21.5, "21.5", devices.TypeNumber},
		{devices.Enum("auto"), "auto", `"auto"`, devices.TypeEnum},
		{devices.Value{}, nil, "<none>", 0},
	} {
		if tc.v.Any() != tc.any || tc.v.String() != tc.str || tc.v.Type() != tc.kind {
			t.Errorf("%#v: Any %v, String %s, Type %v", tc.v, tc.v.Any(), tc.v.String(), tc.v.Type())
		}
	}
	if devices.Number(1) == devices.Number(2) || devices.Number(1) != devices.Number(1) {
		t.Error("Values must compare by content")
	}
}

func TestCheckWrite(t *testing.T) {
	props := []devices.Property{
		{Name: "temperature", Type: devices.TypeNumber, Readable: true},
		{Name: "on", Type: devices.TypeBool, Readable: true, Writable: true},
	}
	if _, err := devices.CheckWrite(props, "on", devices.Bool(true)); err != nil {
		t.Error(err)
	}
	if _, err := devices.CheckWrite(props, "temperature", devices.Number(1)); !errors.Is(err, devices.ErrReadOnly) {
		t.Errorf("read-only: %v", err)
	}
	if _, err := devices.CheckWrite(props, "humidity", devices.Number(1)); !errors.Is(err, devices.ErrUnknownProperty) || !strings.Contains(err.Error(), "temperature, on") {
		t.Errorf("unknown property: %v", err)
	}
}

type opts struct{ N int }

func (o *opts) Validate() error {
	if o.N < 0 {
		return devices.Invalidf("n %d must not be negative", o.N)
	}
	return nil
}

type other struct{}

func (*other) Validate() error { return nil }

type nopDevice struct{ props []devices.Property }

func (d nopDevice) Properties() []devices.Property                   { return d.props }
func (nopDevice) Read(context.Context) (devices.Readings, error)     { return devices.Readings{}, nil }
func (nopDevice) Write(context.Context, string, devices.Value) error { return nil }
func (nopDevice) Close() error                                       { return nil }

func testDriver(name string) devices.Driver {
	return devices.Define(name, "test driver",
		func() opts { return opts{N: 3} },
		func(o opts) []devices.Property {
			return []devices.Property{{Name: strings.Repeat("p", o.N), Type: devices.TypeBool, Readable: true}}
		},
		func(_ context.Context, _ devices.Env, o opts) (devices.Device, error) {
			if o.N == 7 {
				return nil, hal.ErrNACK
			}
			return nopDevice{}, nil
		})
}

func TestRegistry(t *testing.T) {
	r, err := devices.NewRegistry(testDriver("b"), testDriver("a"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Names(), ","); got != "a,b" {
		t.Errorf("Names = %s", got)
	}
	if _, err := devices.NewRegistry(testDriver("a"), testDriver("a")); err == nil {
		t.Error("duplicate names accepted")
	}
	if _, err := devices.NewRegistry(devices.Driver{Name: "x"}); err == nil {
		t.Error("a driver not built with Define accepted")
	}
	if _, err := r.Lookup("c"); !errors.Is(err, devices.ErrUnknownDriver) || !strings.Contains(err.Error(), "known: a, b") {
		t.Errorf("Lookup(c) = %v", err)
	}
	drv, _ := r.Lookup("a")
	o := drv.NewOptions()
	if o.(*opts).N != 3 {
		t.Errorf("defaults: %+v", o)
	}
	if p, err := drv.Properties(o); err != nil || p[0].Name != "ppp" {
		t.Errorf("Properties = %v, %v", p, err)
	}
	if _, err := drv.Properties(&opts{N: -1}); !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), `driver "a"`) {
		t.Errorf("invalid options: %v", err)
	}
	if _, err := r.Open(context.Background(), "a", devices.Env{}, &other{}); !errors.Is(err, devices.ErrInvalidOptions) {
		t.Errorf("wrong options type: %v", err)
	}
	if _, err := r.Open(context.Background(), "a", devices.Env{}, nil); !errors.Is(err, devices.ErrInvalidOptions) {
		t.Errorf("nil options: %v", err)
	}
	if _, err := r.Open(context.Background(), "a", devices.Env{}, &opts{N: 7}); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("open error: %v", err)
	}
	if d, err := r.Open(context.Background(), "b", devices.Env{}, &opts{}); err != nil || d == nil {
		t.Errorf("Open = %v, %v", d, err)
	}
}

func TestEnvWithoutHardware(t *testing.T) {
	var env devices.Env
	ctx := context.Background()
	if _, err := env.I2C(ctx, "1"); err == nil {
		t.Error("I2C without buses")
	}
	if _, err := env.OpenOutput(ctx, "GPIO1", hal.OutputConfig{}); err == nil {
		t.Error("OpenOutput without lines")
	}
	if _, err := env.OpenInput(ctx, "GPIO1", hal.InputConfig{}); err == nil {
		t.Error("OpenInput without lines")
	}
	if _, err := env.OpenPWM(ctx, "p"); err == nil {
		t.Error("OpenPWM without lines")
	}
}

func TestSharedBuses(t *testing.T) {
	h := fake.New()
	defer h.Close()
	s := devices.NewSharedBuses(h)
	ctx := context.Background()
	var wg sync.WaitGroup
	buses := make(chan any, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := s.Bus(ctx, "1")
			if err != nil {
				t.Error(err)
			}
			buses <- b
		}()
	}
	wg.Wait()
	close(buses)
	var first any
	for b := range buses {
		if first == nil {
			first = b
		} else if b != first {
			t.Error("the same bus name gave two handles")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bus(ctx, "1"); !errors.Is(err, devices.ErrClosed) {
		t.Errorf("Bus after Close: %v", err)
	}
	h2 := fake.New(fake.WithI2CBuses("1"))
	defer h2.Close()
	if _, err := devices.NewSharedBuses(h2).Bus(ctx, "7"); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("unknown bus: %v", err)
	}
}

func TestSleep(t *testing.T) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if err := devices.Sleep(c, 1<<40); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep with a cancelled context = %v", err)
	}
	if err := devices.Sleep(context.Background(), 0); err != nil {
		t.Errorf("Sleep(0) = %v", err)
	}
}
