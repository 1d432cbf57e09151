package agent

import (
	"sync/atomic"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/metrics"
)

// Metrics turns what the agent does into Prometheus series on a registry.
// Wire it before New: Deps.Events = m.Observe (or call it from your own
// Events function) and Deps.Shadow.Observer = m; then Watch(a) adds the
// series read from the agent's status. Labels come only from the
// configuration (keys, devices, shadow names) and fixed words, never from
// values or from keys the cloud made up.
type Metrics struct {
	results  *metrics.CounterVec
	apply    *metrics.HistogramVec
	sensors  *metrics.CounterVec
	deltas   *metrics.CounterVec
	reports  *metrics.CounterVec
	requests *metrics.CounterVec
	reqTime  *metrics.HistogramVec
	inFlight metrics.Gauge
	reg      *metrics.Registry
}

// unknownKey labels desired keys the configuration does not map (the cloud
// chose them, so they must not become label values).
const unknownKey = "_unmapped"

// NewMetrics registers the agent's series on reg.
func NewMetrics(reg *metrics.Registry) *Metrics {
	return &Metrics{
		reg:      reg,
		results:  reg.Counter("pinshadow_desired_results_total", "Results of desired values by key: applied, pending, failsafe, rejected, fault.", "key", "result"),
		apply:    reg.Histogram("pinshadow_apply_seconds", "Time from a delta's arrival to the hardware write of the desired value, by key.", metrics.LatencyBuckets(), "key"),
		sensors:  reg.Counter("pinshadow_sensor_read_errors_total", "Failed sensor reads by device.", "device"),
		deltas:   reg.Counter("pinshadow_deltas_total", "Deltas and resyncs received by shadow (classic shadow: \"\").", "shadow"),
		reports:  reg.Counter("pinshadow_reports_total", "Reported patches queued by shadow.", "shadow"),
		requests: reg.Counter("pinshadow_shadow_requests_total", "Shadow requests by operation and result: accepted, rejected (with AWS's code) or no_answer.", "op", "result", "code"),
		reqTime:  reg.Histogram("pinshadow_shadow_request_seconds", "Shadow request round trip by operation.", metrics.LatencyBuckets(), "op"),
		inFlight: reg.Gauge("pinshadow_shadow_requests_in_flight", "Shadow requests published and not yet answered.").With(),
	}
}

// Observe records one agent event; use it as (or call it from) Deps.Events.
func (m *Metrics) Observe(e Event) {
	switch e.Kind {
	case EventResult:
		key := e.Key
		if e.Device == "-" || e.Device == "" {
			key = unknownKey
		}
		m.results.With(key, e.Status).Inc()
	case EventWrite:
		if e.Message == "desired" {
			m.apply.With(e.Key).Observe(e.Latency.Seconds())
		}
	case EventSensorError:
		m.sensors.With(e.Device).Inc()
	case EventDelta:
		m.deltas.With(e.Shadow).Inc()
	case EventReported:
		m.reports.With(e.Shadow).Inc()
	}
}

// RequestStarted implements shadowsync.RequestObserver.
func (m *Metrics) RequestStarted(string) { m.inFlight.Add(1) }

// RequestDone implements shadowsync.RequestObserver.
func (m *Metrics) RequestDone(op string, code int, took time.Duration) {
	m.inFlight.Add(-1)
	switch {
	case code == 200:
		m.requests.With(op, "accepted", "200").Inc()
	case code == 0:
		m.requests.With(op, "no_answer", "").Inc()
	default:
		m.requests.With(op, "rejected", codeLabel(code)).Inc()
	}
	m.reqTime.With(op).Observe(took.Seconds())
}

// codeLabel keeps the code label bounded: AWS's codes are 4xx and 5xx.
func codeLabel(code int) string {
	if code < 400 || code > 599 {
		return "other"
	}
	return itoa3(code)
}

func itoa3(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

// Watch adds the series read from a's status once per scrape: connection
// state (pinshadow_connection_state{state=…}, 1 for the current one),
// connects and drops, the offline queue's depth and drops, readiness and
// the loop's heartbeat. Call it once.
func (m *Metrics) Watch(a *Agent) {
	states := m.reg.Gauge("pinshadow_connection_state", "1 for the MQTT connection's current state (idle, connecting, online, offline, closed), 0 for the others.", "state")
	var snap atomic.Pointer[ConnectionStatus]
	snap.Store(&ConnectionStatus{})
	m.reg.CounterFunc("pinshadow_connects_total", "Successful MQTT connections (the first and every reconnect).", func() float64 { return float64(snap.Load().Connects) })
	m.reg.CounterFunc("pinshadow_connection_drops_total", "Established MQTT connections that were lost (each is followed by reconnect attempts).", func() float64 { return float64(snap.Load().Drops) })
	m.reg.CounterFunc("pinshadow_offline_queue_dropped_total", "Offline messages discarded by the queue's drop policy.", func() float64 { return float64(snap.Load().Dropped) })
	queued := m.reg.Gauge("pinshadow_offline_queue_depth", "Messages waiting in the offline queue.").With()
	ready := m.reg.Gauge("pinshadow_ready", "1 once the agent first converged with every shadow.").With()
	beat := m.reg.Gauge("pinshadow_loop_heartbeat_timestamp_seconds", "Unix time of the reconcile loop's last iteration (0 before the first).").With()
	all := []iot.State{iot.StateIdle, iot.StateConnecting, iot.StateOnline, iot.StateOffline, iot.StateClosed}
	m.reg.BeforeWrite(func() {
		st := a.Status()
		for _, s := range all {
			v := 0.0
			if st.Connection.State == s.String() {
				v = 1
			}
			states.With(s.String()).Set(v)
		}
		c := st.Connection
		snap.Store(&c)
		queued.Set(float64(c.Queued))
		ready.Set(b2f(st.Ready))
		if !st.Heartbeat.IsZero() {
			beat.Set(float64(st.Heartbeat.UnixNano()) / 1e9)
		}
	})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
