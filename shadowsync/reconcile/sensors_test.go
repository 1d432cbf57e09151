package reconcile

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/filter"
	"github.com/pinshadow/pinshadow/shadowdoc"
)

func sensorSpec() *Spec {
	return &Spec{Reported: []ReportedKey{
		{Key: KeyPath{Path: "temperature"}, Device: "bme", Property: "temperature", Interval: 10 * time.Second,
			Filters: []Filter{{Offset: f64(-0.5)}, {Delta: f64(0.2)}, {Heartbeat: time.Minute}}, Round: 1},
		{Key: KeyPath{Path: "humidity"}, Device: "bme", Property: "humidity", Interval: 10 * time.Second, Round: 0},
		{Key: KeyPath{Shadow: "soil", Path: "beds.a"}, Device: "ads", Property: "a0", Interval: 30 * time.Second, Round: -1,
			Publish: &Publish{Topic: "greenhouse/soil", QoS: 1, Interval: time.Minute}},
		{Key: KeyPath{Path: "door"}, Device: "button", Property: "pressed", Interval: time.Second, Round: -1},
	}}
}

func mustSensors(t *testing.T) *Sensors {
	t.Helper()
	s, err := NewSensors(sensorSpec(), filter.Backoff{Base: time.Second, Max: 8 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSensorsCoalesceOneTickIntoOnePatchPerShadow(t *testing.T) {
	s := mustSensors(t)
	if got := s.Due(t0); !slices.Equal(got, []string{"ads", "bme", "button"}) {
		t.Fatalf("due at start = %v, want every device once", got)
	}
	s.Read("bme", devices.Readings{"temperature": devices.Number(21.04), "humidity": devices.Number(40.6)}, nil, t0)
	s.Read("ads", devices.Readings{"a0": devices.Number(0.42)}, nil, t0)
	s.Read("button", devices.Readings{"pressed": devices.Bool(false)}, nil, t0)
	p := s.Patch()
	if want := map[string]any{"temperature": 20.5, "humidity": 41.0, "door": false}; !shadowdoc.Equal(p[""], want) {
		t.Fatalf("classic patch = %v, want %v", p[""], want)
	}
	if want := map[string]any{"beds": map[string]any{"a": 0.42}}; !shadowdoc.Equal(p["soil"], want) {
		t.Fatalf("soil patch = %v, want %v", p["soil"], want)
	}
	if p := s.Patch(); p != nil {
		t.Fatalf("second Patch = %v, want nil", p)
	}
	if tele := s.Telemetry(); len(tele) != 1 || tele[0].Topic != "greenhouse/soil" || tele[0].Value != 0.42 {
		t.Fatalf("telemetry = %v", tele)
	}
	if got := s.Due(t0.Add(time.Second)); !slices.Equal(got, []string{"button"}) {
		t.Fatalf("due after 1s = %v, want only the button (1 s interval)", got)
	}
	if got := s.Next(); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("next = %v", got)
	}
}

func TestSensorsReportOnChangeDeadbandAndHeartbeat(t *testing.T) {
	s := mustSensors(t)
	read := func(at time.Duration, temp float64, pressed bool) map[string]any {
		s.Read("bme", devices.Readings{"temperature": devices.Number(temp), "humidity": devices.Number(40)}, nil, t0.Add(at))
		s.Read("button", devices.Readings{"pressed": devices.Bool(pressed)}, nil, t0.Add(at))
		return s.Patch()[""]
	}
	read(0, 21, false)
	if p := read(10*time.Second, 21.1, false); p != nil {
		t.Fatalf("within the deadband and unchanged: patch %v", p)
	}
	if p := read(20*time.Second, 21.3, true); !shadowdoc.Equal(p, map[string]any{"temperature": 20.8, "door": true}) {
		t.Fatalf("patch = %v, want the temperature past the deadband and the door", p)
	}
	if p := read(80*time.Second, 21.35, true); !shadowdoc.Equal(p, map[string]any{"temperature": 20.8}) {
		t.Fatalf("patch = %v, want the heartbeat re-sending 20.8", p)
	}
}

func TestSensorFailureReportsNullWithoutHoldingBackOthers(t *testing.T) {
	s := mustSensors(t)
	s.Read("bme", devices.Readings{"temperature": devices.Number(21), "humidity": devices.Number(40)}, nil, t0)
	s.Patch()
	nack := errors.New("i2c: NACK")
	s.Read("bme", nil, nack, t0.Add(10*time.Second))
	s.Read("ads", devices.Readings{"a0": devices.Number(0.5)}, nil, t0.Add(10*time.Second))
	p := s.Patch()
	if v, ok := p[""]["temperature"]; !ok || v != nil {
		t.Fatalf("temperature = %v (present %v), want null", v, ok)
	}
	st, _ := p[""][StatusKey].(map[string]any)["humidity"].(map[string]any)
	if st["status"] != "fault" || !strings.Contains(st["message"].(string), "reading bme failed: i2c: NACK") {
		t.Fatalf("humidity status = %v", st)
	}
	if !shadowdoc.Equal(p["soil"], map[string]any{"beds": map[string]any{"a": 0.5}}) {
		t.Fatalf("the healthy sensor was held back: %v", p["soil"])
	}
	// Retries follow the backoff (1 s, 2 s, 4 s), not the 10 s interval,
	// and the same error is not re-reported.
	at := t0.Add(10 * time.Second)
	for _, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := s.Due(at.Add(wait - time.Millisecond)); slices.Contains(got, "bme") {
			t.Fatalf("bme due %v early", time.Millisecond)
		}
		at = at.Add(wait)
		if got := s.Due(at); !slices.Contains(got, "bme") {
			t.Fatalf("bme not due at %v", at)
		}
		s.Read("bme", nil, nack, at)
		if p := s.Patch(); p[""] != nil {
			t.Fatalf("same failure re-reported: %v", p)
		}
	}
	// Recovery: the value is reported at once, even inside the deadband,
	// and the status is removed.
	s.Read("bme", devices.Readings{"temperature": devices.Number(21.1), "humidity": devices.Number(40)}, nil, at.Add(8*time.Second))
	p = s.Patch()
	if !shadowdoc.Equal(p[""]["temperature"], 20.6) || !shadowdoc.Equal(p[""]["humidity"], 40.0) {
		t.Fatalf("after recovery patch = %v", p[""])
	}
	if st := p[""][StatusKey].(map[string]any); st["temperature"] != nil || len(st) != 2 {
		t.Fatalf("statuses after recovery = %v, want both set to null", st)
	}
}

func TestSensorMissingPropertyIsAFault(t *testing.T) {
	s := mustSensors(t)
	s.Read("bme", devices.Readings{"temperature": devices.Number(21)}, nil, t0)
	p := s.Patch()
	st := p[""][StatusKey].(map[string]any)["humidity"].(map[string]any)
	if st["status"] != "fault" || !strings.Contains(st["message"].(string), `no value for "humidity"`) {
		t.Fatalf("status = %v", st)
	}
	if !shadowdoc.Equal(p[""]["temperature"], 20.5) {
		t.Fatalf("temperature = %v", p[""]["temperature"])
	}
}

func TestChainFromSpec(t *testing.T) {
	bad := []struct {
		name string
		f    Filter
		msg  string
	}{
		{"two kinds in one item", Filter{Offset: f64(1), Median: 3}, "sets 2 kinds"},
		{"empty item", Filter{}, "sets 0 kinds"},
		{"one calibration point", Filter{Calibrate: []CalPoint{{1, 2}}}, "at least 2 points"},
		{"negative window", Filter{MovingAverage: -2}, "window size -2"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Chain(ReportedKey{Key: KeyPath{Path: "t"}, Filters: []Filter{tc.f}})
			if !errors.Is(err, filter.ErrInvalid) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "reported key t") {
				t.Fatalf("err = %v, want ErrInvalid naming the key and saying %q", err, tc.msg)
			}
		})
	}
	c, err := Chain(ReportedKey{Filters: []Filter{{Calibrate: []CalPoint{{0, 0}, {10, 20}}}, {Clamp: &devices.Range{Min: 0, Max: 15}}}, Round: -1})
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Push(5, t0); out != 10 {
		t.Fatalf("calibrated 5 → %v, want 10", out)
	}
	if out, _ := c.Push(9, t0); out != 15 {
		t.Fatalf("clamped 18 → %v, want 15", out)
	}
}

// FuzzSensors: any sequence of readings and failures never panics, every
// patch marshals to JSON, a failed device's keys are null and no healthy
// device is held back.
func FuzzSensors(f *testing.F) {
	f.Add([]byte{0, 10, 1, 200, 2, 3, 0, 15})
	f.Add([]byte{1, 1, 1, 1, 0, 0})
	f.Fuzz(func(t *testing.T, script []byte) {
		s := mustSensors(t)
		now := t0
		lastAds := -1.0
		for i := 0; i+1 < len(script); i += 2 {
			op, x := script[i], float64(script[i+1])
			now = now.Add(time.Duration(x) * 100 * time.Millisecond)
			var err error
			if op%3 == 1 {
				err = errors.New("i2c: NACK")
			}
			r := devices.Readings{"temperature": devices.Number(x / 10), "humidity": devices.Number(x)}
			if op%3 == 2 {
				delete(r, "humidity")
			}
			s.Read("bme", r, err, now)
			s.Read("ads", devices.Readings{"a0": devices.Number(x)}, nil, now)
			p := s.Patch()
			if _, mErr := json.Marshal(p); mErr != nil {
				t.Fatalf("patch does not marshal: %v", mErr)
			}
			if err != nil {
				if v, ok := p[""]["temperature"]; ok && v != nil {
					t.Fatalf("failed read reported temperature %v", v)
				}
			}
			if x != lastAds || i == 0 {
				if got, _ := lookup(p["soil"], "beds.a"); !shadowdoc.Equal(got, x) {
					t.Fatalf("ads changed to %v but the soil patch is %v", x, p["soil"])
				}
			}
			lastAds = x
		}
	})
}
