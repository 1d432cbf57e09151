package localcloud

import (
	"strconv"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/shadow"
	"github.com/pinshadow/pinshadow/metrics"
)

// Metrics counts what the shadow service does, on a registry the caller
// owns (`agent cloud --metrics-listen`). Create it once with NewMetrics and
// pass it in Options.Metrics; servers started one after another (a restart)
// keep adding to the same series. Labels are operations, results and
// codes only, never things or clients.
type Metrics struct {
	requests  *metrics.CounterVec
	throttled *metrics.CounterVec
	latency   *metrics.HistogramVec
	inFlight  metrics.Gauge
}

// NewMetrics registers the shadow service's series on reg.
func NewMetrics(reg *metrics.Registry) *Metrics {
	return &Metrics{
		requests:  reg.Counter("localcloud_shadow_requests_total", "Shadow requests by operation and result (accepted, or rejected with its code).", "op", "result", "code"),
		throttled: reg.Counter("localcloud_throttled_total", "Requests refused with 429 before the shadow service saw them, by reason: rate (per-thing rate limit) or in_flight (per-connection limit).", "reason"),
		latency:   reg.Histogram("localcloud_shadow_request_seconds", "Time from a request's arrival to its response being published (queueing, engine, commit), by operation.", metrics.LatencyBuckets(), "op"),
		inFlight:  reg.Gauge("localcloud_requests_in_flight", "Requests received and not yet answered.").With(),
	}
}

func (m *Metrics) received() {
	if m != nil {
		m.inFlight.Add(1)
	}
}

func (m *Metrics) throttle(reason string) {
	if m != nil {
		m.throttled.With(reason).Inc()
	}
}

// answered records one request's result once its response is published.
func (m *Metrics) answered(op shadow.Op, code int, since time.Time) {
	if m == nil {
		return
	}
	m.inFlight.Add(-1)
	if code == 0 {
		m.requests.With(string(op), "accepted", "200").Inc()
	} else {
		c := "other"
		if code >= 400 && code <= 599 {
			c = strconv.Itoa(code)
		}
		m.requests.With(string(op), "rejected", c).Inc()
	}
	m.latency.With(string(op)).Observe(time.Since(since).Seconds())
}
