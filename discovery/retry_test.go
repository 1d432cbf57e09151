package discovery

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// script answers Discover with its errors in order, then success.
type script struct {
	errs  []error
	calls int
}

func (s *script) Discover(context.Context, string) (*Response, error) {
	s.calls++
	if s.calls <= len(s.errs) {
		return nil, s.errs[s.calls-1]
	}
	return &Response{Groups: []Group{{ID: "g"}}}, nil
}

// waits records the sleeper's waits; it returns at once.
type waits []time.Duration

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	*w = append(*w, d)
	return ctx.Err()
}

func status(code int) error { return &StatusError{Thing: "t", Status: code} }

var errNet = errors.New("connection refused")

func TestRetry(t *testing.T) {
	s := time.Second
	tests := []struct {
		name      string
		errs      []error
		policy    Retry
		calls     int
		waits     []time.Duration
		wantErr   error // nil: success
		permanent bool
	}{
		{"success at once", nil, Retry{}, 1, nil, nil, false},
		{"third try works", []error{errNet, status(500)}, Retry{}, 3, []time.Duration{s, 2 * s}, nil, false},
		{"400 stops at once", []error{status(400)}, Retry{}, 1, nil, ErrBadRequest, true},
		{"401 stops at once", []error{status(401)}, Retry{}, 1, nil, ErrUnauthorized, true},
		{"404 stops at once", []error{errNet, status(404)}, Retry{}, 2, []time.Duration{s}, ErrNotFound, true},
		{"429 retried after Retry-After", []error{&StatusError{Status: 429, RetryAfter: 7 * s}}, Retry{}, 2, []time.Duration{7 * s}, nil, false},
		{"Retry-After capped", []error{&StatusError{Status: 429, RetryAfter: time.Hour}}, Retry{}, 2, []time.Duration{32 * s}, nil, false},
		{"timeouts retried", []error{fmt.Errorf("%w: x", ErrTimeout)}, Retry{}, 2, []time.Duration{s}, nil, false},
		{"404 retried when asked", []error{status(404), status(404)},
			Retry{Permanent: func(err error) bool { return errors.Is(err, ErrBadRequest) }}, 3, []time.Duration{s, 2 * s}, nil, false},
		{"gives up after Attempts", []error{errNet, errNet, errNet, errNet}, Retry{Attempts: 3, Base: 2 * s, Max: 3 * s}, 3, []time.Duration{2 * s, 3 * s}, errNet, false},
		{"v1 sample schedule", repeat(errNet, 10), Retry{}, 10,
			[]time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 32 * s, 32 * s, 32 * s}, errNet, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w waits
			p := tt.policy
			p.Sleep = w.sleep
			sc := &script{errs: tt.errs}
			r, err := p.Do(context.Background(), sc, "t")
			if sc.calls != tt.calls {
				t.Errorf("%d calls, want %d", sc.calls, tt.calls)
			}
			if !reflect.DeepEqual([]time.Duration(w), tt.waits) {
				t.Errorf("waits %v, want %v", w, tt.waits)
			}
			if tt.wantErr == nil {
				if err != nil || r == nil {
					t.Errorf("Do = %v, %v", r, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || Permanent(err) != tt.permanent {
				t.Errorf("err = %v, want %v (permanent %v)", err, tt.wantErr, tt.permanent)
			}
		})
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var retried []int
	p := Retry{
		Sleep:   func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() },
		OnRetry: func(n int, err error, wait time.Duration) { retried = append(retried, n) },
	}
	sc := &script{errs: repeat(errNet, 5)}
	_, err := p.Do(ctx, sc, "t")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errNet) || sc.calls != 1 || len(retried) != 1 {
		t.Errorf("err %v after %d calls, retried %v", err, sc.calls, retried)
	}
}

func TestRetryRealSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep = %v", err)
	}
	if err := sleep(context.Background(), 0); err != nil {
		t.Errorf("sleep(0) = %v", err)
	}
}

func TestDelay(t *testing.T) {
	r := Retry{}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 6: 32 * time.Second, 60: 32 * time.Second} {
		if got := r.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}
