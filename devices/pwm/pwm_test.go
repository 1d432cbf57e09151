package pwm

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func open(t *testing.T, h *fake.HAL, driver string, o devices.Options) devices.Device {
	t.Helper()
	reg, err := devices.NewRegistry(Drivers()...)
	if err != nil {
		t.Fatal(err)
	}
	d, err := reg.Open(ctx(t), driver, devices.Env{Lines: h}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestDimmer(t *testing.T) {
	h := fake.New()
	defer h.Close()
	d := open(t, h, "pwm", &DutyOptions{Channel: "pwmchip0/0", Frequency: 1000, Initial: 10})
	if duty, f, on := h.PWM("pwmchip0/0"); !on || duty != 0.1 || f != 1000 {
		t.Errorf("after open: duty %v, %v Hz, enabled %v; want 0.1 at 1000 Hz", duty, f, on)
	}
	if err := d.Write(ctx(t), "level", devices.Number(62.5)); err != nil {
		t.Fatal(err)
	}
	if duty, _, _ := h.PWM("pwmchip0/0"); duty != 0.625 {
		t.Errorf("duty %v, want 0.625", duty)
	}
	if r, err := d.Read(ctx(t)); err != nil || r["level"].Number() != 62.5 {
		t.Errorf("Read = %v, %v", r, err)
	}
	if err := d.Write(ctx(t), "level", devices.Number(101)); !errors.Is(err, devices.ErrInvalidValue) {
		t.Errorf("level 101: %v", err)
	}
	if err := d.Write(ctx(t), "level", devices.Number(math.NaN())); !errors.Is(err, devices.ErrInvalidValue) {
		t.Errorf("level NaN: %v", err)
	}
}

func TestFanMinimumDuty(t *testing.T) {
	h := fake.New()
	defer h.Close()
	reg, _ := devices.NewRegistry(Drivers()...)
	drv, _ := reg.Lookup("fan")
	o := drv.NewOptions().(*DutyOptions)
	if o.Frequency != 25000 {
		t.Errorf("fan default frequency %v, want 25 kHz (4-wire fan spec)", o.Frequency)
	}
	o.Channel, o.MinDuty = "pwmchip0/1", 20
	d := open(t, h, "fan", o)
	for _, tc := range []struct{ set, want float64 }{{5, 20}, {0, 0}, {55, 55}} {
		if err := d.Write(ctx(t), "speed", devices.Number(tc.set)); err != nil {
			t.Fatal(err)
		}
		if r, _ := d.Read(ctx(t)); r["speed"].Number() != tc.want {
			t.Errorf("speed %v reads back %v, want %v (what the channel holds)", tc.set, r["speed"], tc.want)
		}
	}
}

func TestServo(t *testing.T) {
	h := fake.New()
	defer h.Close()
	lim := devices.ServoLimits{MinPulse: 500 * time.Microsecond, MaxPulse: 2500 * time.Microsecond, MinAngle: -90, MaxAngle: 90}
	d := open(t, h, "servo", &ServoOptions{Channel: "pwmchip0/0", Limits: lim})
	if _, _, on := h.PWM("pwmchip0/0"); on {
		t.Error("servo without initial angle is driven at open")
	}
	if r, err := d.Read(ctx(t)); err != nil || len(r) != 0 {
		t.Errorf("undriven servo reads %v, %v; want no angle", r, err)
	}
	for _, tc := range []struct{ angle, pulseUS float64 }{{-90, 500}, {0, 1500}, {45, 2000}, {90, 2500}} {
		if err := d.Write(ctx(t), "angle", devices.Number(tc.angle)); err != nil {
			t.Fatal(err)
		}
		duty, f, _ := h.PWM("pwmchip0/0")
		if f != 50 || math.Abs(duty*20000-tc.pulseUS) > 0.01 {
			t.Errorf("angle %v: %v Hz, pulse %v µs; want 50 Hz, %v µs", tc.angle, f, duty*20000, tc.pulseUS)
		}
		if r, _ := d.Read(ctx(t)); r["angle"].Number() != tc.angle {
			t.Errorf("angle %v reads back %v", tc.angle, r["angle"])
		}
	}
	if err := d.Write(ctx(t), "angle", devices.Number(91)); !errors.Is(err, devices.ErrInvalidValue) {
		t.Errorf("angle 91: %v", err)
	}
	mid := 10.0
	d2 := open(t, h, "servo", &ServoOptions{Channel: "pwmchip0/1", Limits: devices.DefaultServoLimits(), Initial: &mid})
	if r, _ := d2.Read(ctx(t)); r["angle"].Number() != 10 {
		t.Errorf("initial angle: %v", r)
	}
}

func TestServoLimits(t *testing.T) {
	l := devices.DefaultServoLimits()
	if got := l.Pulse(90); got != 1500*time.Microsecond {
		t.Errorf("Pulse(90) = %v", got)
	}
	if got := l.Pulse(200); got != 2*time.Millisecond {
		t.Errorf("Pulse(200) = %v, want clamped to 2 ms", got)
	}
	for _, tc := range []struct {
		l    devices.ServoLimits
		want string
	}{
		{devices.ServoLimits{MinPulse: 0, MaxPulse: time.Millisecond, MaxAngle: 1}, "min_pulse"},
		{devices.ServoLimits{MinPulse: 2 * time.Millisecond, MaxPulse: time.Millisecond, MaxAngle: 1}, "max_pulse"},
		{devices.ServoLimits{MinPulse: time.Millisecond, MaxPulse: 25 * time.Millisecond, MaxAngle: 1}, "period"},
		{devices.ServoLimits{MinPulse: time.Millisecond, MaxPulse: 2 * time.Millisecond, MinAngle: 10, MaxAngle: 10}, "max_angle"},
		{devices.ServoLimits{MinPulse: time.Millisecond, MaxPulse: 2 * time.Millisecond, MaxAngle: math.Inf(1)}, "finite"},
	} {
		o := ServoOptions{Channel: "c", Limits: tc.l}
		if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalidOptions mentioning %q", tc.l, err, tc.want)
		}
	}
	bad := 200.0
	o := ServoOptions{Channel: "c", Limits: l, Initial: &bad}
	if err := o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) {
		t.Errorf("initial 200°: %v", err)
	}
}

func TestDutyValidationAndErrors(t *testing.T) {
	for _, tc := range []struct {
		o    DutyOptions
		want string
	}{
		{DutyOptions{Frequency: 1000}, "channel"},
		{DutyOptions{Channel: "c"}, "frequency"},
		{DutyOptions{Channel: "c", Frequency: 1000, MinDuty: 120}, "min_duty"},
		{DutyOptions{Channel: "c", Frequency: 1000, Initial: -1}, "initial"},
	} {
		if err := tc.o.Validate(); !errors.Is(err, devices.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalidOptions mentioning %q", tc.o, err, tc.want)
		}
	}
	h := fake.New(fake.WithPWMs("pwmchip0/0"))
	defer h.Close()
	reg, _ := devices.NewRegistry(Drivers()...)
	if _, err := reg.Open(ctx(t), "pwm", devices.Env{Lines: h}, &DutyOptions{Channel: "pwmchip9/9", Frequency: 100}); !errors.Is(err, hal.ErrNotFound) {
		t.Errorf("unknown channel: %v", err)
	}
	d := open(t, h, "pwm", &DutyOptions{Channel: "pwmchip0/0", Frequency: 100})
	h.SetError("pwmchip0/0", hal.ErrTimeout)
	if err := d.Write(ctx(t), "level", devices.Number(1)); !errors.Is(err, hal.ErrTimeout) {
		t.Errorf("failing channel: %v", err)
	}
}
