// Package filter turns raw sensor readings into the values a shadow should
// carry and decides when they are worth reporting. A Chain is a value with
// explicit state: Push(value, now) runs one reading through the configured
// steps, in configuration order, and says whether it should be reported.
// Nothing here reads a clock or does I/O, so every rule is table-tested.
//
// # Steps and their semantics (ESPHome's, where ESPHome documents them)
//
//   - Offset(x): value + x. Multiply(x): value * x.
//   - Calibrate(points): linear map fitted through (measured → truth)
//     points: exact for two points, least squares for more (ESPHome
//     calibrate_linear, method least_squares).
//   - Clamp(min, max): values outside are moved to the nearest bound.
//   - Median(n), MovingAverage(n): the median / mean of the last n values
//     that reached the step (fewer while the window fills). They emit on
//     every push (ESPHome's send_every: 1, send_first_at: 1).
//   - Delta(d): passes a value when it is the first one or when
//     |value - last passed| ≥ d (ESPHome delta, absolute form).
//   - Throttle(p): passes a value when it is the first one or when at least
//     p has elapsed since the last value it passed (ESPHome throttle).
//   - Heartbeat(p): guarantees a report at least every p: when a push is
//     dropped by a delta and p has elapsed since the last report, the last
//     reported value is reported again (ESPHome's heartbeat placed after a
//     delta, the usual "on change or every p" idiom). Its position in the
//     list does not matter.
//
// A step that drops a value ends the chain for that push: later steps
// (including their windows) see only values that passed, as in ESPHome.
//
// # How throttle and heartbeat interact with delta
//
// Throttle is a hard cap: nothing, not even a heartbeat, is reported more
// often than a throttle allows. Heartbeat is a floor that overrides delta
// only: a value the deadband considered unchanged is re-sent when the
// heartbeat is due, but a value the throttle held back is not (the throttle
// period then bounds the heartbeat from below).
//
// Rounding (decimals ≥ 0) is applied to the reported value last; gates
// compare unrounded values so rounding never hides or invents a change.
//
// # Only news is reported
//
// Unlike ESPHome, which publishes every value that leaves the chain, a
// value equal to the last one reported (after rounding) is not reported
// again: a shadow update costs a message and carries no news. A heartbeat
// is the way to re-send unchanged values.
//
// # Failed reads
//
// A failed read is not pushed: the caller reports null with an error
// status and calls Fail, which clears every window and gate so the first
// good reading after the failure is reported at once (the cloud holds null
// until then). Backoff gives the retry schedule.
package filter

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// ErrInvalid is wrapped by every error about a step's parameters.
var ErrInvalid = errors.New("filter: invalid step")

// kind identifies a step.
type kind int

const (
	kindOffset kind = iota + 1
	kindMultiply
	kindCalibrate
	kindClamp
	kindMedian
	kindMovingAverage
	kindDelta
	kindThrottle
	kindHeartbeat
)

// Step is one filter step. Build it with Offset, Multiply, Calibrate,
// Clamp, Median, MovingAverage, Delta, Throttle or Heartbeat; the zero Step
// is invalid.
type Step struct {
	kind   kind
	x      float64 // offset, multiply factor, delta
	lin    Linear
	lo, hi float64
	n      int
	period time.Duration
}

// Offset adds x.
func Offset(x float64) Step { return Step{kind: kindOffset, x: x} }

// Multiply multiplies by x.
func Multiply(x float64) Step { return Step{kind: kindMultiply, x: x} }

// Calibrate maps values through the line fitted to points (measured →
// truth). It fails when fewer than two points are given or when the points
// do not determine a line (all measured values equal).
func Calibrate(points []Point) (Step, error) {
	l, err := Fit(points)
	if err != nil {
		return Step{}, err
	}
	return Step{kind: kindCalibrate, lin: l}, nil
}

// Clamp limits values to [lo, hi].
func Clamp(lo, hi float64) Step { return Step{kind: kindClamp, lo: lo, hi: hi} }

// Median emits the median of the last n values.
func Median(n int) Step { return Step{kind: kindMedian, n: n} }

// MovingAverage emits the mean of the last n values.
func MovingAverage(n int) Step { return Step{kind: kindMovingAverage, n: n} }

// Delta passes a value only when it moved by at least d since the last
// value passed.
func Delta(d float64) Step { return Step{kind: kindDelta, x: d} }

// Throttle passes at most one value per p.
func Throttle(p time.Duration) Step { return Step{kind: kindThrottle, period: p} }

// Heartbeat reports the last value again when nothing was reported for p.
func Heartbeat(p time.Duration) Step { return Step{kind: kindHeartbeat, period: p} }

func (s Step) check() error {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch s.kind {
	case kindOffset, kindMultiply:
		if !finite(s.x) {
			return fmt.Errorf("%w: %v is not a finite number", ErrInvalid, s.x)
		}
	case kindCalibrate:
	case kindClamp:
		if math.IsNaN(s.lo) || math.IsNaN(s.hi) || s.lo > s.hi {
			return fmt.Errorf("%w: clamp %v…%v: the minimum must not exceed the maximum", ErrInvalid, s.lo, s.hi)
		}
	case kindMedian, kindMovingAverage:
		if s.n < 1 {
			return fmt.Errorf("%w: window size %d: use 1 or more", ErrInvalid, s.n)
		}
	case kindDelta:
		if !finite(s.x) || s.x < 0 {
			return fmt.Errorf("%w: delta %v: use a finite number ≥ 0", ErrInvalid, s.x)
		}
	case kindThrottle, kindHeartbeat:
		if s.period <= 0 {
			return fmt.Errorf("%w: period %v: use a positive duration", ErrInvalid, s.period)
		}
	default:
		return fmt.Errorf("%w: empty step (build steps with the filter constructors)", ErrInvalid)
	}
	return nil
}

// Chain is a sensor's filter chain with its state. The zero Chain passes
// every value through unrounded. A Chain is a value: copying it copies the
// configuration but shares window storage, so use New for each sensor.
type Chain struct {
	steps    []Step
	decimals int // <0: no rounding
	st       []stepState

	reported     bool // a value has been reported since New or Fail
	lastReported float64
	lastReportAt time.Time
}

// stepState is the mutable part of one step.
type stepState struct {
	window []float64 // median / moving average
	has    bool      // delta / throttle: something passed
	last   float64   // delta: last value passed
	at     time.Time // throttle: when it last passed
}

// New builds a chain from steps in configuration order; decimals < 0 means
// no rounding.
func New(decimals int, steps ...Step) (*Chain, error) {
	for i, s := range steps {
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("filter step %d: %w", i+1, err)
		}
	}
	return &Chain{steps: slices.Clone(steps), decimals: decimals, st: make([]stepState, len(steps))}, nil
}

// Push runs one reading taken at now through the chain. It returns the
// value to report and whether to report it now. NaN and infinite readings
// are dropped without touching any state (treat them as failed reads).
func (c *Chain) Push(v float64, now time.Time) (out float64, report bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	if len(c.st) != len(c.steps) {
		c.st = make([]stepState, len(c.steps))
	}
	heartbeat := time.Duration(0)
	for _, s := range c.steps {
		if s.kind == kindHeartbeat && (heartbeat == 0 || s.period < heartbeat) {
			heartbeat = s.period
		}
	}
	x := v
	for i, s := range c.steps {
		st := &c.st[i]
		pass := true
		droppedByDelta := false
		switch s.kind {
		case kindOffset:
			x += s.x
		case kindMultiply:
			x *= s.x
		case kindCalibrate:
			x = s.lin.Apply(x)
		case kindClamp:
			x = min(max(x, s.lo), s.hi)
		case kindMedian, kindMovingAverage:
			st.window = append(st.window, x)
			if len(st.window) > s.n {
				st.window = st.window[len(st.window)-s.n:]
			}
			if s.kind == kindMedian {
				x = median(st.window)
			} else {
				x = mean(st.window)
			}
		case kindDelta:
			if st.has && math.Abs(x-st.last) < s.x {
				pass, droppedByDelta = false, true
			} else {
				st.has, st.last = true, x
			}
		case kindThrottle:
			if st.has && now.Sub(st.at) < s.period {
				pass = false
			} else {
				st.has, st.at = true, now
			}
		case kindHeartbeat:
		}
		if !pass {
			if droppedByDelta && heartbeat > 0 && c.reported && now.Sub(c.lastReportAt) >= heartbeat && c.throttleAllows(i+1, now) {
				c.markThrottles(now)
				c.lastReportAt = now
				return c.lastReported, true
			}
			return 0, false
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
	}
	x = Round(x, c.decimals)
	if c.reported && x == c.lastReported {
		// No news: a shadow update costs a message. Only a heartbeat
		// re-sends an unchanged value.
		if heartbeat > 0 && now.Sub(c.lastReportAt) >= heartbeat && c.throttleAllows(len(c.steps), now) {
			c.lastReportAt = now
			return x, true
		}
		return 0, false
	}
	c.reported, c.lastReported, c.lastReportAt = true, x, now
	return x, true
}

// throttleAllows reports whether every throttle step from index from on
// (those this push has not reached; earlier ones passed it) would pass a
// value at now.
func (c *Chain) throttleAllows(from int, now time.Time) bool {
	for i, s := range c.steps {
		if i >= from && s.kind == kindThrottle && c.st[i].has && now.Sub(c.st[i].at) < s.period {
			return false
		}
	}
	return true
}

// markThrottles records a heartbeat report in the throttles so it counts
// against their rate.
func (c *Chain) markThrottles(now time.Time) {
	for i, s := range c.steps {
		if s.kind == kindThrottle {
			c.st[i].has, c.st[i].at = true, now
		}
	}
}

// Fail records a failed read: windows and gates are cleared, so the first
// good value afterwards is reported immediately (the shadow holds null
// meanwhile).
func (c *Chain) Fail() {
	c.st = make([]stepState, len(c.steps))
	c.reported = false
	c.lastReportAt = time.Time{}
}

// Last returns the last value reported and whether there is one since New
// or the last Fail.
func (c *Chain) Last() (float64, bool) { return c.lastReported, c.reported }

// NextHeartbeat returns when the heartbeat is next due (zero if the chain
// has no heartbeat or nothing was reported yet), so the caller can read the
// sensor then.
func (c *Chain) NextHeartbeat() time.Time {
	var p time.Duration
	for _, s := range c.steps {
		if s.kind == kindHeartbeat && (p == 0 || s.period < p) {
			p = s.period
		}
	}
	if p == 0 || !c.reported {
		return time.Time{}
	}
	return c.lastReportAt.Add(p)
}

// Round rounds x to decimals places (half away from zero); decimals < 0
// returns x unchanged.
func Round(x float64, decimals int) float64 {
	if decimals < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	if decimals > 15 || math.Abs(x) >= 1e15 {
		return x // no fractional digits left to round
	}
	p := math.Pow(10, float64(decimals))
	r := math.Round(x*p) / p
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return x
	}
	return r
}

func median(w []float64) float64 {
	s := slices.Clone(w)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func mean(w []float64) float64 {
	var sum float64
	for _, x := range w {
		sum += x
	}
	return sum / float64(len(w))
}
