package shadowsync

import (
	"testing"
	"time"
)

func TestBucketRateAndBurst(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := newBucket(10, 2, t0) // 10/s, burst 2
	steps := []struct {
		at   time.Duration
		wait time.Duration
	}{
		{0, 0}, {0, 0}, // the burst
		{0, 100 * time.Millisecond}, // empty: one token takes 100ms
		{50 * time.Millisecond, 50 * time.Millisecond},
		{100 * time.Millisecond, 0},
		{100 * time.Millisecond, 100 * time.Millisecond},
		{10 * time.Second, 0}, // refilled, but only up to the burst
		{10 * time.Second, 0},
		{10 * time.Second, 100 * time.Millisecond},
	}
	for i, s := range steps {
		if got := b.take(t0.Add(s.at)); got != s.wait {
			t.Errorf("step %d at %v: wait %v, want %v", i, s.at, got, s.wait)
		}
	}
}

func TestBackoffDoublesToMax(t *testing.T) {
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, w := range want {
		if got := backoff(i+1, time.Second, 30*time.Second); got != w*time.Second {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w*time.Second)
		}
	}
}
