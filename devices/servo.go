package devices

import (
	"math"
	"time"
)

// ServoLimits maps a hobby servo's angle to its pulse width: MinAngle gives
// MinPulse, MaxAngle gives MaxPulse, linearly in between. Used by the PWM
// servo driver and the PCA9685 servo channels.
type ServoLimits struct {
	MinPulse time.Duration `yaml:"min_pulse"`
	MaxPulse time.Duration `yaml:"max_pulse"`
	MinAngle float64       `yaml:"min_angle"`
	MaxAngle float64       `yaml:"max_angle"`
}

// DefaultServoLimits are the common SG90-class limits: 1–2 ms for 0–180°.
// Many servos travel further (0.5–2.5 ms); configure them explicitly.
func DefaultServoLimits() ServoLimits {
	return ServoLimits{MinPulse: time.Millisecond, MaxPulse: 2 * time.Millisecond, MinAngle: 0, MaxAngle: 180}
}

// Validate checks the limits against the PWM period the servo is driven at.
func (s ServoLimits) Validate(period time.Duration) error {
	switch {
	case s.MinPulse <= 0:
		return Invalidf("servo min_pulse %v must be positive (typically 500µs–1ms)", s.MinPulse)
	case s.MaxPulse <= s.MinPulse:
		return Invalidf("servo max_pulse %v must be greater than min_pulse %v", s.MaxPulse, s.MinPulse)
	case s.MaxPulse >= period:
		return Invalidf("servo max_pulse %v must be shorter than the PWM period %v", s.MaxPulse, period)
	case math.IsNaN(s.MinAngle) || math.IsNaN(s.MaxAngle) || math.IsInf(s.MinAngle, 0) || math.IsInf(s.MaxAngle, 0):
		return Invalidf("servo angles must be finite numbers, got %v and %v", s.MinAngle, s.MaxAngle)
	case s.MaxAngle <= s.MinAngle:
		return Invalidf("servo max_angle %v must be greater than min_angle %v", s.MaxAngle, s.MinAngle)
	}
	return nil
}

// Pulse returns the pulse width for angle, clamped to the limits.
func (s ServoLimits) Pulse(angle float64) time.Duration {
	f := (angle - s.MinAngle) / (s.MaxAngle - s.MinAngle)
	f = math.Max(0, math.Min(1, f))
	return s.MinPulse + time.Duration(math.Round(f*float64(s.MaxPulse-s.MinPulse)))
}

// Angle returns the angle a pulse width stands for (not clamped, so a
// pulse set by someone else outside the limits shows as such).
func (s ServoLimits) Angle(pulse time.Duration) float64 {
	f := float64(pulse-s.MinPulse) / float64(s.MaxPulse-s.MinPulse)
	return s.MinAngle + f*(s.MaxAngle-s.MinAngle)
}

// Property returns the "angle" property for these limits.
func (s ServoLimits) Property(name string) Property {
	return Property{Name: name, Type: TypeNumber, Unit: "°", Range: &Range{Min: s.MinAngle, Max: s.MaxAngle},
		Readable: true, Writable: true, Description: "servo angle"}
}
