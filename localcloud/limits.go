package localcloud

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket per thing.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
	sweepAt int // map size that triggers dropping idle buckets
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}, sweepAt: 1024}
}

// allow takes one token from thing's bucket at time now.
func (r *rateLimiter) allow(thing string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.buckets[thing]
	if !ok {
		if len(r.buckets) >= r.sweepAt {
			r.sweep(now)
		}
		b = &bucket{tokens: r.burst, last: now}
		r.buckets[thing] = b
	}
	r.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (r *rateLimiter) refill(b *bucket, now time.Time) {
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(r.burst, b.tokens+dt*r.rate)
		b.last = now
	}
}

// sweep drops buckets that have refilled completely: forgetting them
// changes nothing, and it keeps memory bounded by the active things.
func (r *rateLimiter) sweep(now time.Time) {
	for k, b := range r.buckets {
		r.refill(b, now)
		if b.tokens >= r.burst {
			delete(r.buckets, k)
		}
	}
	r.sweepAt = max(1024, 2*len(r.buckets))
}

// inFlight counts queued or unanswered requests per connection.
type inFlight struct {
	limit int
	mu    sync.Mutex
	n     map[string]int
}

func newInFlight(limit int) *inFlight { return &inFlight{limit: limit, n: map[string]int{}} }

// acquire counts one more request for conn unless it already has limit.
func (f *inFlight) acquire(conn string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[conn] >= f.limit {
		return false
	}
	f.n[conn]++
	return true
}

// release ends one request of conn.
func (f *inFlight) release(conn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[conn] <= 1 {
		delete(f.n, conn)
		return
	}
	f.n[conn]--
}
