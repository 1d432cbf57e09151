package localcloud

import (
	"bytes"
	"testing"

	"github.com/pinshadow/pinshadow/metrics"
)

// The service's metrics count accepted and rejected requests by operation
// and code, throttling by reason, and end with nothing in flight.
func TestMetricsCountRequestsAndThrottling(t *testing.T) {
	reg := metrics.NewRegistry()
	o := testOptions(t)
	o.Metrics = NewMetrics(reg)
	o.RatePerThing = 0.001 // no refill during the test
	o.RateBurst = 3
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // idempotent: also after the Close below
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := connect(t, "tcp://"+endpoint(t, s, "mqtt"), nil)
	c.subscribe("$aws/things/m/shadow/+/accepted", "$aws/things/m/shadow/+/rejected")
	c.publish("$aws/things/m/shadow/get", `{}`)
	c.expect("$aws/things/m/shadow/get/rejected") // 404
	c.publish("$aws/things/m/shadow/update", `{"state":{"desired":{"a":1}}}`)
	c.expect("$aws/things/m/shadow/update/accepted")
	c.publish("$aws/things/m/shadow/update", `{"state":{"desired":{"a":2}},"version":99}`)
	c.expect("$aws/things/m/shadow/update/rejected") // 409
	c.publish("$aws/things/m/shadow/update", `{"state":{"desired":{"a":3}}}`)
	c.expect("$aws/things/m/shadow/update/rejected") // 429: the burst of 3 is spent
	// Close waits for every response to be published (and counted).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := reg.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	got, err := metrics.Parse(&b)
	if err != nil {
		t.Fatalf("exposition: %v\n%s", err, b.String())
	}
	for series, want := range map[string]float64{
		`localcloud_shadow_requests_total{op="get",result="rejected",code="404"}`:    1,
		`localcloud_shadow_requests_total{op="update",result="accepted",code="200"}`: 1,
		`localcloud_shadow_requests_total{op="update",result="rejected",code="409"}`: 1,
		`localcloud_shadow_requests_total{op="update",result="rejected",code="429"}`: 1,
		`localcloud_throttled_total{reason="rate"}`:                                  1,
		`localcloud_shadow_request_seconds_count{op="update"}`:                       3,
		`localcloud_requests_in_flight`:                                              0,
	} {
		if v, ok := got.Get(series); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
}
