package agent

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
	"github.com/pinshadow/pinshadow/metrics"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// scrape writes reg and parses it strictly.
func scrape(t *testing.T, reg *metrics.Registry) metrics.Samples {
	t.Helper()
	var b bytes.Buffer
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	s, err := metrics.Parse(&b)
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	return s
}

// The metrics move the way an operator expects: a desired change counts as
// applied with a latency, an out-of-range one as rejected, a broken sensor
// as read errors, and the connection shows online with one connect.
func TestMetricsFollowTheAgent(t *testing.T) {
	c := startCloud(t)
	dir := t.TempDir()
	h := fake.New(fake.WithSeed(1))
	bme := chips.NewBME280(chips.DatasheetCalibration())
	bme.SetTemperature(20)
	h.Bus("1").Attach(0x76, bme)
	cfg := parseConfig(t, greenhouse, dir)

	reg := metrics.NewRegistry()
	m := NewMetrics(reg)
	rec := newRecorder()
	ag, err := New(cfg, Deps{HAL: h, Endpoint: "tcp://" + c.addr, StopTimeout: 3 * time.Second,
		Events: func(e Event) { m.Observe(e); rec.add(e) },
		Shadow: shadowsync.Options{Timeout: 2 * time.Second, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, Observer: m}})
	if err != nil {
		t.Fatal(err)
	}
	m.Watch(ag)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	app := newApp(t, c, "gh1")
	defer func() {
		c.stop() // the cloud first, as the rig does (mochi close race)
		app.close()
		cancel()
		<-done
	}()
	select {
	case <-ag.Ready():
	case <-time.After(wait):
		t.Fatal("agent never converged")
	}
	s := scrape(t, reg)
	if v, _ := s.Get(`pinshadow_connection_state{state="online"}`); v != 1 {
		t.Errorf("connection_state online = %v, want 1", v)
	}
	if v, _ := s.Get(`pinshadow_connects_total`); v != 1 {
		t.Errorf("connects_total = %v, want 1", v)
	}
	if v, _ := s.Get(`pinshadow_shadow_requests_total{op="get",result="accepted",code="200"}`); v < 1 {
		// The first get of a new thing's shadow is 404 (no shadow yet).
		if v404, _ := s.Get(`pinshadow_shadow_requests_total{op="get",result="rejected",code="404"}`); v404 < 1 {
			t.Errorf("no get counted: %v", s)
		}
	}

	mark := rec.mark()
	app.desire(t, `{"fan": 40}`)
	rec.waitFor(t, mark, "fan result applied", func(e Event) bool { return e.Kind == EventResult && e.Key == "fan" && e.Status == "applied" })
	app.desire(t, `{"fan": 400}`)
	rec.waitFor(t, mark, "fan result rejected", func(e Event) bool { return e.Kind == EventResult && e.Key == "fan" && e.Status == "rejected" })
	bme.Fail(hal.ErrNACK)
	rec.waitFor(t, mark, "sensor error", kind(EventSensorError))

	s = scrape(t, reg)
	for series, min := range map[string]float64{
		`pinshadow_desired_results_total{key="fan",result="applied"}`:               1,
		`pinshadow_desired_results_total{key="fan",result="rejected"}`:              1,
		`pinshadow_apply_seconds_count{key="fan"}`:                                  1,
		`pinshadow_apply_seconds_bucket{key="fan",le="+Inf"}`:                       1,
		`pinshadow_sensor_read_errors_total{device="climate"}`:                      1,
		`pinshadow_deltas_total{shadow=""}`:                                         2,
		`pinshadow_shadow_requests_total{op="update",result="accepted",code="200"}`: 1,
	} {
		if v, ok := s.Get(series); !ok || v < min {
			t.Errorf("%s = %v (present %v), want ≥ %v", series, v, ok, min)
		}
	}
	if v, _ := s.Get(`pinshadow_shadow_requests_in_flight`); v < 0 {
		t.Errorf("in flight %v < 0", v)
	}
}
