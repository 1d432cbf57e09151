// Package reconcile holds the agent's pure decisions: given what the
// configuration maps, what the shadow desires and what the hardware was last
// set to or read as, which writes to make and what to report for each key.
// It does no I/O and reads no clock (the time is an input), so every policy —
// validation, ranges, transforms, interlocks, minimum toggle intervals,
// on_reject and failsafe — is table-tested here.
package reconcile

import (
	"time"

	"github.com/pinshadow/pinshadow/devices"
)

// Spec is everything reconcile needs from the configuration: the mapping of
// shadow keys to device properties. Package config builds it from YAML.
type Spec struct {
	// Desired maps desired keys to writable properties.
	Desired []DesiredKey
	// Reported maps reported keys to readable properties.
	Reported []ReportedKey
	// Interlocks: within one group at most one key may be "on" (true, or a
	// number > 0) at a time.
	Interlocks []Interlock
}

// KeyPath addresses a key in a shadow: the shadow ("" = classic) and the
// dotted path inside desired/reported ("heater", "lights.kitchen").
type KeyPath struct {
	Shadow string
	Path   string
}

// DesiredKey maps one desired key to a writable device property.
type DesiredKey struct {
	Key      KeyPath
	Device   string // device id
	Property string // property name on that device
	// Type, Unit, Range and Choices are the shadow-side contract (after
	// transforms the value must also pass the device property's own check).
	Type    devices.Type
	Unit    string
	Range   *devices.Range
	Choices []string
	// Transform maps a shadow value to the device value (and back for
	// reports): scale, offset, invert, calibrate_linear.
	Transform Transform
	Safety    Safety
	OnReject  OnReject
}

// Transform is applied to numbers shadow→device as
// device = Calibrate(value*Scale + Offset); Invert flips a bool (or a
// number v into Max+Min-v of the device range). The reverse mapping is
// applied to what the hardware reports.
type Transform struct {
	Scale  float64 // 0 means 1
	Offset float64
	Invert bool
	// Calibrate, when it has two or more points, maps linearly between
	// (from → to) pairs sorted by From (least squares for more than two).
	Calibrate []CalPoint
}

// CalPoint is one calibrate_linear pair.
type CalPoint struct{ From, To float64 }

// Safety is per-output protection. Boot and Failsafe are shadow-side values
// (the key's type and range), transformed like desired values before they
// are written.
type Safety struct {
	// Boot is the value applied at start-up before the shadow is known
	// (zero Value: leave the hardware as the HAL opened it).
	Boot devices.Value
	// Failsafe is applied after the agent has been offline for
	// FailsafeAfter (0: never).
	Failsafe      devices.Value
	FailsafeAfter time.Duration
	// MinToggleInterval is the least time between two changes of this
	// output (protects relays and compressors); a change asked for sooner
	// is deferred, not dropped.
	MinToggleInterval time.Duration
}

// OnReject says what happens to a desired value that cannot be applied.
type OnReject int

const (
	// Keep leaves desired as it is; the delta stays, its status says why.
	Keep OnReject = iota
	// ClearDesired sets the desired key to null so the delta disappears.
	ClearDesired
	// Revert writes the last applied value back into desired.
	Revert
)

// ReportedKey maps a readable property to a reported key.
type ReportedKey struct {
	Key      KeyPath
	Device   string
	Property string
	// Interval is how often the sensor is read (update_interval).
	Interval time.Duration
	Filters  []Filter
	// Round to this many decimals (-1: no rounding).
	Round int
	// Publish optionally streams readings to a telemetry topic.
	Publish *Publish
}

// Filter is one step of a sensor's filter chain, in config order. Exactly
// one of the fields is set.
type Filter struct {
	Offset        *float64
	Multiply      *float64
	Calibrate     []CalPoint
	Clamp         *devices.Range
	Median        int           // window size
	MovingAverage int           // window size
	Delta         *float64      // deadband: report only when it moved by at least this
	Throttle      time.Duration // at most one report per this
	Heartbeat     time.Duration // report at least this often even if unchanged
}

// Publish streams a property to an MQTT topic.
type Publish struct {
	Topic    string
	QoS      byte
	Interval time.Duration
}

// Interlock is a named group of desired keys that must never be on
// together.
type Interlock struct {
	Name string
	Keys []KeyPath
}
