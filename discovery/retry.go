package discovery

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Discoverer is what Retry retries: Client, or a fake.
type Discoverer interface {
	Discover(ctx context.Context, thing string) (*Response, error)
}

// Retry is the retry policy around Discover. The zero value is the v1
// SDK sample's: 10 tries, waiting 1, 2, 4 … s capped at 32 s, stopping at
// once on Permanent errors.
type Retry struct {
	// Attempts is the number of tries (default 10).
	Attempts int
	// Base is the first wait (default 1 s), doubled after each failure up
	// to Max (default 32 s). A throttled answer's Retry-After, when
	// longer, is waited instead (still capped at Max).
	Base, Max time.Duration
	// Permanent says which errors end the retries at once; nil means
	// Permanent (400, 401, 404). Use func(err error) bool { return
	// errors.Is(err, ErrBadRequest) } to keep retrying 401/404, e.g. while a
	// group association propagates.
	Permanent func(error) bool
	// Sleep waits d or until ctx ends (nil: a timer). Tests inject an
	// instant one.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, if set, is told about each failed try that will be retried.
	OnRetry func(attempt int, err error, wait time.Duration)
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 10
	}
	if r.Base <= 0 {
		r.Base = time.Second
	}
	if r.Max <= 0 {
		r.Max = 32 * time.Second
	}
	if r.Permanent == nil {
		r.Permanent = Permanent
	}
	if r.Sleep == nil {
		r.Sleep = sleep
	}
	return r
}

// Delay is the wait after the n-th failed try (n ≥ 1).
func (r Retry) Delay(n int) time.Duration {
	r = r.withDefaults()
	d := r.Base
	for i := 1; i < n && d < r.Max; i++ {
		d *= 2
	}
	return min(d, r.Max)
}

// Do calls d.Discover until it succeeds, fails permanently, the tries are
// used up or ctx ends. The error is the last one, wrapped with the count.
func (r Retry) Do(ctx context.Context, d Discoverer, thing string) (*Response, error) {
	r = r.withDefaults()
	var err error
	for n := 1; ; n++ {
		var resp *Response
		resp, err = d.Discover(ctx, thing)
		if err == nil {
			return resp, nil
		}
		if r.Permanent(err) || ctx.Err() != nil {
			return nil, err
		}
		if n >= r.Attempts {
			return nil, fmt.Errorf("discovery gave up after %d tries: %w", n, err)
		}
		wait := r.Delay(n)
		var se *StatusError
		if errors.As(err, &se) && se.RetryAfter > wait {
			wait = min(se.RetryAfter, r.Max)
		}
		if r.OnRetry != nil {
			r.OnRetry(n, err, wait)
		}
		if serr := r.Sleep(ctx, wait); serr != nil {
			return nil, fmt.Errorf("discovery stopped while waiting to retry (%w); last error: %w", serr, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
