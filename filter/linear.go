package filter

import (
	"fmt"
	"math"
)

// Point is one calibration pair: what the sensor measured (From) and the
// true value (To).
type Point struct{ From, To float64 }

// Linear is the line y = Slope*x + Intercept fitted by Fit.
type Linear struct{ Slope, Intercept float64 }

// Fit returns the line through points: exact for two points, least squares
// for more (ESPHome calibrate_linear with method least_squares). It fails
// with fewer than two points, non-finite values, or when every From is the
// same (no line is determined), and when the fitted slope is zero (the map
// could not be inverted).
func Fit(points []Point) (Linear, error) {
	if len(points) < 2 {
		return Linear{}, fmt.Errorf("%w: calibrate_linear needs at least 2 points, got %d", ErrInvalid, len(points))
	}
	var sx, sy, sxx, sxy float64
	n := float64(len(points))
	for _, p := range points {
		if math.IsNaN(p.From) || math.IsInf(p.From, 0) || math.IsNaN(p.To) || math.IsInf(p.To, 0) {
			return Linear{}, fmt.Errorf("%w: calibrate_linear point %v → %v is not finite", ErrInvalid, p.From, p.To)
		}
		sx += p.From
		sy += p.To
		sxx += p.From * p.From
		sxy += p.From * p.To
	}
	den := n*sxx - sx*sx
	if den == 0 || math.IsNaN(den) || math.IsInf(den, 0) {
		return Linear{}, fmt.Errorf("%w: calibrate_linear points all measure %v: give points with different measured values", ErrInvalid, points[0].From)
	}
	a := (n*sxy - sx*sy) / den
	b := (sy - a*sx) / n
	if a == 0 || math.IsNaN(a) || math.IsInf(a, 0) || math.IsNaN(b) || math.IsInf(b, 0) {
		return Linear{}, fmt.Errorf("%w: calibrate_linear points map every value to %v: give points whose true values differ", ErrInvalid, b)
	}
	return Linear{Slope: a, Intercept: b}, nil
}

// Apply maps x through the line.
func (l Linear) Apply(x float64) float64 { return l.Slope*x + l.Intercept }

// Invert maps y back: the x with Apply(x) == y. Slope must not be zero (Fit
// guarantees it).
func (l Linear) Invert(y float64) float64 { return (y - l.Intercept) / l.Slope }
