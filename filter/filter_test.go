package filter

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// sample is one reading at a time offset, and what the cloud should see.
type sample struct {
	at     time.Duration
	in     float64
	report bool
	out    float64
}

func mustChain(t *testing.T, decimals int, steps ...Step) *Chain {
	t.Helper()
	c, err := New(decimals, steps...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustCal(t *testing.T, pts ...Point) Step {
	t.Helper()
	s, err := Calibrate(pts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestChain(t *testing.T) {
	s := time.Second
	tests := []struct {
		name     string
		decimals int
		steps    func(t *testing.T) []Step
		samples  []sample
	}{
		{"no steps reports every change, not repeats", -1, func(*testing.T) []Step { return nil },
			[]sample{{0, 1, true, 1}, {s, 1, false, 0}, {2 * s, 2, true, 2}}},
		{"rounding makes small changes repeats", 0, func(*testing.T) []Step { return nil },
			[]sample{{0, 20.1, true, 20}, {s, 20.4, false, 0}, {2 * s, 20.6, true, 21}}},
		{"heartbeat alone re-sends an unchanged value", -1, func(*testing.T) []Step { return []Step{Heartbeat(60 * s)} },
			[]sample{{0, 5, true, 5}, {30 * s, 5, false, 0}, {60 * s, 5, true, 5}, {61 * s, 5, false, 0}, {62 * s, 6, true, 6}}},
		{"offset then multiply, in order", -1, func(*testing.T) []Step { return []Step{Offset(1), Multiply(2)} },
			[]sample{{0, 3, true, 8}}},
		{"multiply then offset", -1, func(*testing.T) []Step { return []Step{Multiply(2), Offset(1)} },
			[]sample{{0, 3, true, 7}}},
		{"calibrate two points", -1, func(t *testing.T) []Step { return []Step{mustCal(t, Point{0, 1}, Point{10, 21})} },
			[]sample{{0, 5, true, 11}}},
		{"clamp", -1, func(*testing.T) []Step { return []Step{Clamp(0, 100)} },
			[]sample{{0, -5, true, 0}, {s, 120, true, 100}, {2 * s, 50, true, 50}}},
		{"median removes a spike", -1, func(*testing.T) []Step { return []Step{Median(3)} },
			[]sample{{0, 20, true, 20}, {s, 22, true, 21}, {2 * s, 500, true, 22}, {3 * s, 21, false, 0}, {4 * s, 21, true, 21}}},
		{"moving average", -1, func(*testing.T) []Step { return []Step{MovingAverage(2)} },
			[]sample{{0, 10, true, 10}, {s, 20, true, 15}, {2 * s, 40, true, 30}}},
		{"delta: first, then only moves of at least d", -1, func(*testing.T) []Step { return []Step{Delta(0.5)} },
			[]sample{{0, 20, true, 20}, {s, 20.4, false, 0}, {2 * s, 20.5, true, 20.5}, {3 * s, 20.1, false, 0}, {4 * s, 20.9, false, 0}, {5 * s, 20, true, 20}, {6 * s, 19.4, true, 19.4}}},
		{"delta compares with the last passed value, not the last reading (no creeping)", -1, func(*testing.T) []Step { return []Step{Delta(1)} },
			[]sample{{0, 0, true, 0}, {s, 0.6, false, 0}, {2 * s, 1.2, true, 1.2}}},
		{"throttle: one per period", -1, func(*testing.T) []Step { return []Step{Throttle(10 * s)} },
			[]sample{{0, 1, true, 1}, {s, 2, false, 0}, {9 * s, 3, false, 0}, {10 * s, 4, true, 4}, {11 * s, 5, false, 0}}},
		{"heartbeat re-sends the last reported value when delta holds back", -1, func(*testing.T) []Step { return []Step{Delta(1), Heartbeat(60 * s)} },
			[]sample{{0, 20, true, 20}, {30 * s, 20.2, false, 0}, {60 * s, 20.3, true, 20}, {90 * s, 20.4, false, 0}, {120 * s, 21.5, true, 21.5}, {150 * s, 21.4, false, 0}, {180 * s, 21.4, true, 21.5}}},
		{"heartbeat position does not matter", -1, func(*testing.T) []Step { return []Step{Heartbeat(60 * s), Delta(1)} },
			[]sample{{0, 20, true, 20}, {30 * s, 20.2, false, 0}, {60 * s, 20.3, true, 20}}},
		{"heartbeat never beats throttle", -1, func(*testing.T) []Step { return []Step{Throttle(100 * s), Delta(1), Heartbeat(60 * s)} },
			[]sample{{0, 20, true, 20}, {60 * s, 20.1, false, 0}, {100 * s, 20.2, true, 20}, {150 * s, 30, false, 0}, {200 * s, 30, true, 30}}},
		{"delta then throttle: a change inside the throttle period waits for the next reading", -1, func(*testing.T) []Step { return []Step{Delta(1), Throttle(10 * s)} },
			[]sample{{0, 0, true, 0}, {s, 5, false, 0}, {10 * s, 5, false, 0}, {11 * s, 5.1, false, 0}, {12 * s, 7, true, 7}}},
		{"throttle then delta", -1, func(*testing.T) []Step { return []Step{Throttle(10 * s), Delta(1)} },
			[]sample{{0, 0, true, 0}, {s, 5, false, 0}, {10 * s, 5, true, 5}}},
		{"rounding is last and gates see unrounded values", 1, func(*testing.T) []Step { return []Step{Delta(0.1)} },
			[]sample{{0, 20.04, true, 20}, {s, 20.13, false, 0}, {2 * s, 20.14, true, 20.1}}},
		{"window before delta smooths before gating", 0, func(*testing.T) []Step { return []Step{MovingAverage(4), Delta(2)} },
			[]sample{{0, 10, true, 10}, {s, 14, true, 12}, {2 * s, 10, false, 0}, {3 * s, 10, false, 0}}},
		{"a value dropped by delta never reaches a later window", -1, func(*testing.T) []Step { return []Step{Delta(5), MovingAverage(2)} },
			[]sample{{0, 0, true, 0}, {s, 1, false, 0}, {2 * s, 10, true, 5}}},
		{"NaN and Inf are ignored", -1, func(*testing.T) []Step { return []Step{MovingAverage(2)} },
			[]sample{{0, 2, true, 2}, {s, math.NaN(), false, 0}, {2 * s, math.Inf(1), false, 0}, {3 * s, 4, true, 3}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustChain(t, tc.decimals, tc.steps(t)...)
			for i, s := range tc.samples {
				out, rep := c.Push(s.in, t0.Add(s.at))
				if rep != s.report || (rep && math.Abs(out-s.out) > 1e-9) {
					t.Fatalf("sample %d (%v at +%v): got (%v, %v), want (%v, %v)", i, s.in, s.at, out, rep, s.out, s.report)
				}
			}
		})
	}
}

func TestFailClearsStateSoTheRecoveryIsReported(t *testing.T) {
	c := mustChain(t, -1, Delta(5), Throttle(time.Minute), MovingAverage(3))
	if _, rep := c.Push(20, t0); !rep {
		t.Fatal("first value not reported")
	}
	c.Fail() // the cloud now shows null
	if _, ok := c.Last(); ok {
		t.Fatal("Last still has a value after Fail")
	}
	// Same value, 1 s later: inside both the deadband and the throttle, but
	// the shadow holds null, so it must be reported.
	out, rep := c.Push(20.5, t0.Add(time.Second))
	if !rep || out != 20.5 {
		t.Fatalf("after a failure got (%v, %v), want (20.5, true) with a fresh window", out, rep)
	}
}

func TestNextHeartbeat(t *testing.T) {
	c := mustChain(t, -1, Delta(1), Heartbeat(time.Minute), Heartbeat(30*time.Second))
	if !c.NextHeartbeat().IsZero() {
		t.Fatal("heartbeat due before anything was reported")
	}
	c.Push(1, t0)
	if got := c.NextHeartbeat(); !got.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("next heartbeat %v, want +30s (the shortest)", got)
	}
	if got := mustChain(t, -1, Delta(1)).NextHeartbeat(); !got.IsZero() {
		t.Fatalf("chain without heartbeat: %v", got)
	}
}

func TestNewRejectsBadSteps(t *testing.T) {
	tests := []struct {
		name string
		step Step
	}{
		{"zero step", Step{}},
		{"median window 0", Median(0)},
		{"average window -1", MovingAverage(-1)},
		{"negative delta", Delta(-1)},
		{"NaN delta", Delta(math.NaN())},
		{"zero throttle", Throttle(0)},
		{"negative heartbeat", Heartbeat(-time.Second)},
		{"clamp reversed", Clamp(10, 0)},
		{"infinite offset", Offset(math.Inf(1))},
		{"NaN multiply", Multiply(math.NaN())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(-1, Offset(1), tc.step)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if want := "filter step 2"; err != nil && !strings.Contains(err.Error(), want) {
				t.Fatalf("err %q does not say which step (%q)", err, want)
			}
		})
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		name   string
		pts    []Point
		slope  float64
		icept  float64
		errMsg string
	}{
		{"two points exact", []Point{{0, 32}, {100, 212}}, 1.8, 32, ""},
		{"order does not matter", []Point{{100, 212}, {0, 32}}, 1.8, 32, ""},
		{"least squares", []Point{{0, 0}, {1, 2.1}, {2, 3.9}}, 1.95, 0.05, ""},
		{"one point", []Point{{1, 2}}, 0, 0, "at least 2 points"},
		{"same measured value", []Point{{1, 2}, {1, 3}}, 0, 0, "different measured values"},
		{"flat", []Point{{1, 2}, {3, 2}}, 0, 0, "true values differ"},
		{"not finite", []Point{{1, 2}, {math.Inf(1), 3}}, 0, 0, "not finite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Fit(tc.pts)
			if tc.errMsg != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.errMsg) {
					t.Fatalf("err = %v, want one saying %q", err, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(l.Slope-tc.slope) > 1e-9 || math.Abs(l.Intercept-tc.icept) > 1e-9 {
				t.Fatalf("fit = %+v, want slope %v intercept %v", l, tc.slope, tc.icept)
			}
			if x := l.Invert(l.Apply(7)); math.Abs(x-7) > 1e-9 {
				t.Fatalf("Invert(Apply(7)) = %v", x)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		b    Backoff
		want []time.Duration // for failures 0, 1, 2, …
	}{
		{"defaults", Backoff{}, []time.Duration{0, s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 64 * s, 128 * s, 256 * s, 300 * s, 300 * s}},
		{"custom", Backoff{Base: 100 * time.Millisecond, Max: s}, []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, s, s}},
		{"max below base", Backoff{Base: 10 * s, Max: s}, []time.Duration{0, 10 * s, 10 * s}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []time.Duration
			for n := range tc.want {
				got = append(got, tc.b.Delay(n))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("delays = %v, want %v", got, tc.want)
			}
		})
	}
	if d := (Backoff{}).Delay(1 << 30); d != 5*time.Minute {
		t.Fatalf("a billion failures: %v, want the 5 min cap", d)
	}
}

func TestRound(t *testing.T) {
	for _, tc := range []struct {
		x    float64
		d    int
		want float64
	}{{1.25, 1, 1.3}, {-1.25, 1, -1.3}, {21.456, 2, 21.46}, {21.456, 0, 21}, {21.456, -1, 21.456}, {1e300, 5, 1e300}} {
		if got := Round(tc.x, tc.d); got != tc.want {
			t.Errorf("Round(%v, %d) = %v, want %v", tc.x, tc.d, got, tc.want)
		}
	}
}

func FuzzChain(f *testing.F) {
	f.Add(1.0, 2.0, 3.0, int64(1), 2, int8(1))
	f.Add(-5.0, 1e308, math.Inf(1), int64(0), 0, int8(-1))
	f.Fuzz(func(t *testing.T, a, b, d float64, stepMs int64, window int, decimals int8) {
		window = window%8 + 1
		if window < 1 {
			window = 1
		}
		if math.IsNaN(d) || math.IsInf(d, 0) || d < 0 {
			d = 0.5
		}
		c, err := New(int(decimals)%6, Offset(1), Median(window), MovingAverage(window), Clamp(-1e6, 1e6), Delta(d), Throttle(time.Second), Heartbeat(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		var lastAt time.Time
		for i, x := range []float64{a, b, a, b, a} {
			now = now.Add(time.Duration(stepMs%5000) * time.Millisecond)
			out, rep := c.Push(x, now)
			if !rep {
				continue
			}
			if math.IsNaN(out) || math.IsInf(out, 0) || out < -1e6-1 || out > 1e6+1 {
				t.Fatalf("push %d: reported %v outside the clamp", i, out)
			}
			if !lastAt.IsZero() && now.Sub(lastAt) < time.Second {
				t.Fatalf("push %d: reported %v after %v (throttle 1s)", i, out, now.Sub(lastAt))
			}
			lastAt = now
		}
	})
}
