package iot

import (
	"math/rand/v2"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock: the backoff test never sleeps.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// The v1 SDK's progressive-backoff integration scenario: base 1 s, max 16 s,
// stable 60 s; connections staying up 3, 4, 6, 10, 18, 34, 66 s.
func TestBackoffSequence(t *testing.T) {
	uptimes := []time.Duration{3, 4, 6, 10, 18, 34, 66}
	want := []time.Duration{1, 2, 4, 8, 16, 16, 1}
	cfg := BackoffConfig{Base: time.Second, Max: 16 * time.Second, Stable: 60 * time.Second}

	for _, jit := range []Jitter{JitterNone, JitterFull, JitterEqual} {
		t.Run(jit.String(), func(t *testing.T) {
			cfg.Jitter = jit
			rng := rand.New(rand.NewPCG(1, uint64(jit)))
			b := NewBackoff(cfg, rng.Float64)
			clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
			for i, up := range uptimes {
				b.Connected(clk.Now())
				clk.Advance(up * time.Second)
				got := b.Disconnected(clk.Now())
				w := want[i] * time.Second
				lo, hi := w, w
				switch jit {
				case JitterFull:
					lo = 0
				case JitterEqual:
					lo = w / 2
				}
				if got < lo || got > hi {
					t.Errorf("drop %d after %ds up: wait %v, want in [%v, %v]", i+1, up, got, lo, hi)
				}
				clk.Advance(got)
			}
		})
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	// Extreme random values: 0 and just below 1.
	for _, r := range []float64{0, 0.5, 0.999999} {
		for _, tc := range []struct {
			jit    Jitter
			lo, hi time.Duration
		}{
			{JitterNone, 8 * time.Second, 8 * time.Second},
			{JitterFull, 0, 8 * time.Second},
			{JitterEqual, 4 * time.Second, 8 * time.Second},
		} {
			b := NewBackoff(BackoffConfig{Base: 8 * time.Second, Max: 8 * time.Second, Stable: time.Minute, Jitter: tc.jit}, func() float64 { return r })
			if got := b.Failed(); got < tc.lo || got > tc.hi {
				t.Errorf("%v rand=%v: %v not in [%v,%v]", tc.jit, r, got, tc.lo, tc.hi)
			}
		}
	}
}

func TestBackoffFailedAttemptsKeepDoubling(t *testing.T) {
	// The very first connect failing: 1, 2, 4, 8, 8 … and never gives up;
	// a connection shorter than Stable does not reset; a stable one does.
	b := NewBackoff(BackoffConfig{Base: time.Second, Max: 8 * time.Second, Stable: 10 * time.Second, Jitter: JitterNone}, nil)
	clk := &fakeClock{now: time.Unix(0, 0)}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Failed())
	}
	b.Connected(clk.Now())
	clk.Advance(9 * time.Second)
	got = append(got, b.Disconnected(clk.Now()), b.Failed())
	b.Connected(clk.Now())
	clk.Advance(10 * time.Second)
	got = append(got, b.Disconnected(clk.Now()), b.Failed())
	want := []time.Duration{1, 2, 4, 8, 8, 8, 8, 1, 2}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("waits %v, want %v (seconds)", got, want)
		}
	}
}

func TestBackoffConfigValidation(t *testing.T) {
	bad := []BackoffConfig{
		{Base: -1},
		{Base: 2 * time.Second, Max: time.Second, Stable: time.Minute},
		{Base: time.Second, Max: time.Second, Stable: time.Second},
		{Base: time.Second, Max: time.Second, Stable: time.Minute, Jitter: 7},
	}
	for _, c := range bad {
		if err := c.withDefaults().validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (BackoffConfig{}).withDefaults().validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	for s, want := range map[string]Jitter{"": JitterFull, "none": JitterNone, "EQUAL": JitterEqual, "full": JitterFull} {
		if got, err := ParseJitter(s); err != nil || got != want {
			t.Errorf("ParseJitter(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseJitter("some"); err == nil {
		t.Error("ParseJitter accepted nonsense")
	}
}
