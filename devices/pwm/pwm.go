// Package pwm holds the devices on one PWM channel: a dimmer ("pwm",
// property level 0–100 %), a fan ("fan", property speed 0–100 % with a
// minimum start duty) and a hobby servo ("servo", property angle, pulse
// width within configured limits at 50 Hz).
//
// Values read back are what the PWM channel holds (hal.PWMOut.Duty), so a
// fan asked for 5 % but clamped to its minimum reports the minimum.
//
// To add a PWM-driven device, write a Driver in Drivers mapping the property
// value to a duty cycle and back.
package pwm

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
)

// DutyOptions configure a dimmer or fan.
type DutyOptions struct {
	// Channel is the HAL PWM channel ("pwmchip0/0").
	Channel string `yaml:"channel"`
	// Frequency in Hz (dimmers 100 Hz–20 kHz; 4-wire PC fans 25 kHz).
	Frequency float64 `yaml:"frequency"`
	// MinDuty in %: non-zero values below it are raised to it (fans stall
	// below their start duty). 0 disables.
	MinDuty float64 `yaml:"min_duty"`
	// Initial duty in % applied at open.
	Initial float64 `yaml:"initial"`
}

// Validate implements devices.Options.
func (o *DutyOptions) Validate() error {
	switch {
	case o.Channel == "":
		return devices.Invalidf("channel is required (a PWM channel such as pwmchip0/0)")
	case !(o.Frequency > 0 && o.Frequency <= 1e6):
		return devices.Invalidf("frequency %v Hz must be above 0 and at most 1 MHz", o.Frequency)
	case !(o.MinDuty >= 0 && o.MinDuty <= 100):
		return devices.Invalidf("min_duty %v must be between 0 and 100 %%", o.MinDuty)
	case !(o.Initial >= 0 && o.Initial <= 100):
		return devices.Invalidf("initial %v must be between 0 and 100 %%", o.Initial)
	}
	return nil
}

// ServoFrequency is the frame rate hobby servos expect.
const ServoFrequency = 50.0

// ServoOptions configure a servo on a PWM channel driven at 50 Hz.
type ServoOptions struct {
	Channel string              `yaml:"channel"`
	Limits  devices.ServoLimits `yaml:",inline"`
	// Initial is the angle applied at open; nil leaves the servo undriven
	// until the first Write (no jump at start-up).
	Initial *float64 `yaml:"initial"`
}

// Validate implements devices.Options.
func (o *ServoOptions) Validate() error {
	if o.Channel == "" {
		return devices.Invalidf("channel is required (a PWM channel such as pwmchip0/0)")
	}
	if err := o.Limits.Validate(time.Duration(float64(time.Second) / ServoFrequency)); err != nil {
		return err
	}
	if o.Initial != nil {
		if err := o.Limits.Property("initial").Check(devices.Number(*o.Initial)); err != nil {
			return devices.Invalidf("initial angle %v is outside min_angle…max_angle (%v…%v)", *o.Initial, o.Limits.MinAngle, o.Limits.MaxAngle)
		}
	}
	return nil
}

// Drivers returns the pwm, fan and servo drivers.
func Drivers() []devices.Driver {
	return []devices.Driver{
		dutyDriver("pwm", "PWM dimmer (property level, 0–100 %)", "level", DutyOptions{Frequency: 1000}),
		dutyDriver("fan", "PWM fan (property speed, 0–100 %)", "speed", DutyOptions{Frequency: 25000}),
		devices.Define("servo", "hobby servo on a PWM channel at 50 Hz (property angle)",
			func() ServoOptions { return ServoOptions{Limits: devices.DefaultServoLimits()} },
			func(o ServoOptions) []devices.Property { return []devices.Property{o.Limits.Property("angle")} },
			func(ctx context.Context, env devices.Env, o ServoOptions) (devices.Device, error) {
				p, err := env.OpenPWM(ctx, o.Channel)
				if err != nil {
					return nil, err
				}
				d, err := NewServo(ctx, p, o)
				if err != nil {
					return nil, errorsJoinClose(err, p)
				}
				return d, nil
			}),
	}
}

func dutyDriver(name, summary, prop string, defaults DutyOptions) devices.Driver {
	return devices.Define(name, summary,
		func() DutyOptions { return defaults },
		func(DutyOptions) []devices.Property { return dutyProps(prop) },
		func(ctx context.Context, env devices.Env, o DutyOptions) (devices.Device, error) {
			p, err := env.OpenPWM(ctx, o.Channel)
			if err != nil {
				return nil, err
			}
			d, err := NewDuty(ctx, p, prop, o)
			if err != nil {
				return nil, errorsJoinClose(err, p)
			}
			return d, nil
		})
}

func errorsJoinClose(err error, c interface{ Close() error }) error {
	if cerr := c.Close(); cerr != nil {
		return fmt.Errorf("%w (and closing: %v)", err, cerr)
	}
	return err
}

func dutyProps(prop string) []devices.Property {
	return []devices.Property{{Name: prop, Type: devices.TypeNumber, Unit: "%", Range: &devices.Range{Min: 0, Max: 100},
		Readable: true, Writable: true, Description: "duty cycle"}}
}

// Duty is a dimmer or fan: one number property in %.
type Duty struct {
	p     hal.PWMOut
	prop  string
	props []devices.Property
	o     DutyOptions
	mu    sync.Mutex
}

// NewDuty returns a duty-cycle device on an opened PWM channel and applies
// o.Initial. The device owns the channel.
func NewDuty(ctx context.Context, p hal.PWMOut, prop string, o DutyOptions) (*Duty, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	d := &Duty{p: p, prop: prop, props: dutyProps(prop), o: o}
	if err := d.set(ctx, o.Initial); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Duty) set(ctx context.Context, pct float64) error {
	if pct > 0 && pct < d.o.MinDuty {
		pct = d.o.MinDuty
	}
	if err := d.p.Set(ctx, pct/100, d.o.Frequency); err != nil {
		return fmt.Errorf("set %s to %v %% at %v Hz: %w", d.p.Name(), pct, d.o.Frequency, err)
	}
	return nil
}

// Properties implements devices.Device.
func (d *Duty) Properties() []devices.Property { return d.props }

// Read implements devices.Device: the duty the channel holds, in %.
func (d *Duty) Read(context.Context) (devices.Readings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return devices.Readings{d.prop: devices.Number(roundTo(d.p.Duty()*100, 1e-6))}, nil
}

// Write implements devices.Device.
func (d *Duty) Write(ctx context.Context, prop string, v devices.Value) error {
	if _, err := devices.CheckWrite(d.props, prop, v); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.set(ctx, v.Number())
}

// Close implements devices.Device.
func (d *Duty) Close() error { return d.p.Close() }

// Servo is a hobby servo: one number property "angle".
type Servo struct {
	p      hal.PWMOut
	limits devices.ServoLimits
	props  []devices.Property
	mu     sync.Mutex
}

// NewServo returns a servo on an opened PWM channel, moving it to
// o.Initial when set. The device owns the channel.
func NewServo(ctx context.Context, p hal.PWMOut, o ServoOptions) (*Servo, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Servo{p: p, limits: o.Limits, props: []devices.Property{o.Limits.Property("angle")}}
	if o.Initial != nil {
		if err := s.set(ctx, *o.Initial); err != nil {
			return nil, err
		}
	}
	return s, nil
}

const servoPeriod = time.Second / time.Duration(ServoFrequency)

func (s *Servo) set(ctx context.Context, angle float64) error {
	pulse := s.limits.Pulse(angle)
	if err := s.p.Set(ctx, float64(pulse)/float64(servoPeriod), ServoFrequency); err != nil {
		return fmt.Errorf("set %s to %v° (pulse %v): %w", s.p.Name(), angle, pulse, err)
	}
	return nil
}

// Properties implements devices.Device.
func (s *Servo) Properties() []devices.Property { return s.props }

// Read implements devices.Device: the angle the channel's pulse width
// stands for; no reading while the servo has never been driven.
func (s *Servo) Read(context.Context) (devices.Readings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	duty := s.p.Duty()
	if duty == 0 {
		return devices.Readings{}, nil
	}
	pulse := time.Duration(duty * float64(servoPeriod))
	return devices.Readings{"angle": devices.Number(roundTo(s.limits.Angle(pulse), 1e-3))}, nil
}

// Write implements devices.Device.
func (s *Servo) Write(ctx context.Context, prop string, v devices.Value) error {
	if _, err := devices.CheckWrite(s.props, prop, v); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set(ctx, v.Number())
}

// Close implements devices.Device.
func (s *Servo) Close() error { return s.p.Close() }

func roundTo(x, step float64) float64 { return math.Round(x/step) * step }
