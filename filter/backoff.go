package filter

import "time"

// Backoff is a retry schedule for a failing read: the first retry after
// Base, then doubling, never more than Max. It has no jitter: retries of a
// local bus do not stampede a shared server, and a deterministic schedule
// is testable. The zero Backoff uses 1 s and 5 min.
type Backoff struct {
	Base, Max time.Duration
}

// Delay returns how long to wait before the next attempt after failures
// consecutive failures (0 failures: no wait).
func (b Backoff) Delay(failures int) time.Duration {
	base, limit := b.Base, b.Max
	if base <= 0 {
		base = time.Second
	}
	if limit <= 0 {
		limit = 5 * time.Minute
	}
	if limit < base {
		limit = base
	}
	if failures <= 0 {
		return 0
	}
	d := base
	for i := 1; i < failures; i++ {
		if d >= limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}
