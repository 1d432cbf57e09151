package reconcile

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/shadowdoc"
)

func num(t *testing.T, v any) float64 {
	t.Helper()
	f, ok := shadowdoc.Number(v)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	return f
}

func wantStatus(t *testing.T, st map[string]any, status string, code int) {
	t.Helper()
	if st == nil {
		t.Fatalf("no status reported, want %s %d", status, code)
	}
	if st["status"] != status || num(t, st["code"]) != float64(code) {
		t.Fatalf("status = %v, want %s %d", st, status, code)
	}
}

func TestValidDeltaIsAppliedAndReportedFromHardware(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"heater": true, "fan": 40}`)
	ver := w.shadows[""].Version
	got := w.step()
	if want := []string{"relay1.on=true", "fan.duty=0.4"}; !slices.Equal(got, want) {
		t.Fatalf("writes = %v, want %v", got, want)
	}
	if w.reported("", "heater") != true || num(t, w.reported("", "fan")) != 40 {
		t.Fatalf("reported = %v", w.shadows[""].Reported)
	}
	st := w.status("", "heater")
	wantStatus(t, st, "applied", 200)
	if num(t, st["version"]) != float64(ver) || num(t, st["at"]) != float64(t0.Unix()) {
		t.Fatalf("status %v: want version %d at %d", st, ver, t0.Unix())
	}
	// Converged: nothing more is written or sent, even though our report
	// bumped the document version.
	w.now = w.now.Add(time.Minute)
	w.step()
	if len(w.dec.Writes) != 0 || len(w.rep.Reported) != 0 {
		t.Fatalf("second step wrote %v and reported %v; want nothing", w.dec.Writes, w.rep.Reported)
	}
}

func TestReportedIsWhatTheHardwareHasNotDesired(t *testing.T) {
	w := newWorld(t, greenhouse())
	// The PWM has a 1 % resolution: 33.3 % settles at 33 %.
	w.readBack = func(o Output, v devices.Value) devices.Value {
		if o.Device == "fan" {
			return devices.Number(float64(int(v.Number()*100)) / 100)
		}
		return v
	}
	w.desire("", `{"fan": 33.3}`)
	if got := w.step(); len(got) != 1 {
		t.Fatalf("writes = %v, want one", got)
	}
	if got := num(t, w.reported("", "fan")); got != 33 {
		t.Fatalf("reported fan = %v, want 33 (what the hardware holds)", got)
	}
	// The hardware cannot do better: no rewrite loop.
	for range 3 {
		w.now = w.now.Add(time.Second)
		if got := w.step(); len(got) != 0 {
			t.Fatalf("rewrote %v although the hardware still holds what it settled at", got)
		}
	}
	// Someone changed the hardware behind our back: converge again.
	w.hw[Output{"fan", "duty"}] = devices.Number(0.9)
	if got := w.step(); !slices.Equal(got, []string{"fan.duty=0.333"}) { // 33.3 % scaled, float noise removed
		t.Fatalf("writes = %v, want the fan set back", got)
	}
}

func TestInvalidValuesAreRejectedAndValidOnesApplied(t *testing.T) {
	tests := []struct {
		name, desired string
		key           string
		code          int
		msg           string
	}{
		{"string for number", `{"fan": "50"}`, "fan", 400, "takes a JSON number from 0 to 100 %"},
		{"number out of range", `{"fan": 150}`, "fan", 400, "150 % is outside 0…100 %"},
		{"negative", `{"fan": -1}`, "fan", 400, "outside"},
		{"huge number", `{"fan": 1e400}`, "fan", 400, "not a finite number"},
		{"string for bool", `{"cooler": "true"}`, "cooler", 400, "takes true or false"},
		{"number for bool", `{"cooler": 1}`, "cooler", 400, "takes true or false"},
		{"object for bool", `{"cooler": {"on": true}}`, "cooler", 400, "is an object"},
		{"enum not a choice", `{"mode": "turbo"}`, "mode", 400, `"turbo" is not one of "auto", "manual"`},
		{"number for enum", `{"mode": 1}`, "mode", 400, "takes one of"},
		{"unknown key", `{"heatr": true}`, "heatr", 404, `no desired key "heatr" is configured`},
		{"unknown nested key", `{"fan": 10, "zone": {"a": 1}}`, "zone", 404, "no desired key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, greenhouse())
			before := map[Output]devices.Value{}
			for o, v := range w.hw {
				before[o] = v
			}
			// A valid key in the same delta is applied.
			w.desire("", `{"heater": true}`)
			w.desire("", tc.desired)
			got := w.step()
			for _, wr := range w.writes {
				if wr.Key.Path == tc.key {
					t.Fatalf("wrote %v for the invalid key", wr)
				}
			}
			if !slices.Contains(got, "relay1.on=true") {
				t.Fatalf("writes = %v; the valid heater change was not applied", got)
			}
			st := w.status("", tc.key)
			wantStatus(t, st, "rejected", tc.code)
			if msg, _ := st["message"].(string); !strings.Contains(msg, tc.msg) {
				t.Fatalf("message %q does not contain %q", msg, tc.msg)
			}
			if num(t, st["version"]) != float64(w.shadows[""].Version-2) && num(t, st["version"]) != float64(w.shadows[""].Version-1) {
				// answered version is the one with the bad value (before
				// our report and any on_reject patch bumped it)
				t.Fatalf("status answers version %v, document is at %d", st["version"], w.shadows[""].Version)
			}
			if _, ok := w.reported("", tc.key).(map[string]any); ok {
				t.Fatalf("the rejected value was echoed into reported: %v", w.shadows[""].Reported)
			}
		})
	}
}

func TestDeviceRefusalIsARejectionBeforeAnyWrite(t *testing.T) {
	w := newWorld(t, greenhouse())
	// The fan's driver only accepts 0…0.8 (a 80 % cap in the driver).
	w.props = map[Output]devices.Property{{"fan", "duty"}: {Name: "duty", Type: devices.TypeNumber, Range: &devices.Range{Min: 0, Max: 0.8}, Writable: true}}
	w.desire("", `{"fan": 90}`)
	if got := w.step(); len(got) != 0 {
		t.Fatalf("writes = %v, want none", got)
	}
	st := w.status("", "fan")
	wantStatus(t, st, "rejected", 400)
	if msg := st["message"].(string); !strings.Contains(msg, "maps to 0.9 on fan.duty, which the device refuses") {
		t.Fatalf("message = %q", msg)
	}
}

func TestUnknownKeyStatusGoesWhenTheKeyDoes(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"heatr": true}`)
	w.settle()
	wantStatus(t, w.status("", "heatr"), "rejected", 404)
	w.desire("", `{"heatr": null, "heater": true}`)
	w.settle()
	if st := w.status("", "heatr"); st != nil {
		t.Fatalf("status of the removed unknown key is still %v", st)
	}
	if _, ok := w.state.Keys[KeyPath{Path: "heatr"}]; ok {
		t.Fatal("state still remembers the removed unknown key")
	}
}

func TestOnReject(t *testing.T) {
	t.Run("clear_desired nulls the key and stops the delta loop", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"fan": 150}`)
		w.step()
		if d := w.rep.Desired[""]; d == nil || d["fan"] != nil || len(d) != 1 {
			t.Fatalf("desired patch = %v, want {fan: null}", w.rep.Desired)
		}
		if _, ok := w.desired("", "fan"); ok {
			t.Fatal("desired.fan still set after the patch")
		}
		w.settle()
		wantStatus(t, w.status("", "fan"), "rejected", 400)
		if len(w.allWrite) != 0 {
			t.Fatalf("hardware touched: %v", w.allWrite)
		}
	})
	t.Run("revert writes back the last applied value and keeps the rejection", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"mode": "manual"}`)
		w.settle()
		w.desire("", `{"mode": "turbo"}`)
		w.step()
		if d := w.rep.Desired[""]; d["mode"] != "manual" {
			t.Fatalf("desired patch = %v, want mode: manual", w.rep.Desired)
		}
		w.settle()
		if v, _ := w.desired("", "mode"); v != "manual" {
			t.Fatalf("desired.mode = %v, want manual", v)
		}
		st := w.status("", "mode")
		wantStatus(t, st, "rejected", 400)
		if !strings.Contains(st["message"].(string), "turbo") {
			t.Fatalf("the rejection explaining the revert was replaced: %v", st)
		}
		if !slices.Equal(w.allWrite, []string{`ctl.mode="manual"`}) {
			t.Fatalf("writes = %v, want only the first manual", w.allWrite)
		}
		// A later valid change is applied and acknowledged.
		w.desire("", `{"mode": "auto"}`)
		w.settle()
		wantStatus(t, w.status("", "mode"), "applied", 200)
	})
	t.Run("revert with nothing applied yet clears", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"mode": "turbo"}`)
		w.settle()
		if _, ok := w.desired("", "mode"); ok {
			t.Fatal("desired.mode still set")
		}
	})
	t.Run("keep leaves desired and reports once", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"cooler": "yes"}`)
		w.step()
		if len(w.rep.Desired) != 0 {
			t.Fatalf("desired patch %v with on_reject keep", w.rep.Desired)
		}
		at := w.status("", "cooler")["at"]
		w.now = w.now.Add(time.Hour)
		w.settle()
		if v, _ := w.desired("", "cooler"); v != "yes" {
			t.Fatalf("desired.cooler = %v, want it left alone", v)
		}
		if w.status("", "cooler")["at"] != at {
			t.Fatal("the unchanged rejection was re-reported with a new time")
		}
	})
}

func TestInterlock(t *testing.T) {
	t.Run("the key asked on while its partner is on loses", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"heater": true}`)
		w.settle()
		w.desire("", `{"cooler": true}`)
		w.settle()
		if w.hw[Output{"relay2", "on"}].Bool() {
			t.Fatal("cooler switched on while the heater is on")
		}
		if !w.hw[Output{"relay1", "on"}].Bool() {
			t.Fatal("heater switched off")
		}
		st := w.status("", "cooler")
		wantStatus(t, st, "rejected", 409)
		if !strings.Contains(st["message"].(string), `interlock "climate"`) || !strings.Contains(st["message"].(string), "switch heater off first") {
			t.Fatalf("message = %v", st["message"])
		}
	})
	t.Run("both asked on at once both lose", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"heater": true, "cooler": true, "fan": 10}`)
		w.settle()
		if !slices.Equal(w.allWrite, []string{"fan.duty=0.1"}) {
			t.Fatalf("writes = %v, want only the fan", w.allWrite)
		}
		wantStatus(t, w.status("", "heater"), "rejected", 409)
		wantStatus(t, w.status("", "cooler"), "rejected", 409)
	})
	t.Run("swap in one delta switches off first", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"heater": true}`)
		w.settle()
		w.allWrite = nil
		w.desire("", `{"heater": false, "cooler": true}`)
		w.step()
		if !slices.Equal(w.allWrite, []string{"relay1.on=false", "relay2.on=true"}) {
			t.Fatalf("writes = %v, want heater off before cooler on", w.allWrite)
		}
		if n := w.writes[1].Needs; !slices.Equal(n, []int{0}) {
			t.Fatalf("cooler's write needs %v, want [0]", n)
		}
	})
	t.Run("partner fails to switch off: the other stays off", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"heater": true}`)
		w.settle()
		w.allWrite = nil
		w.fail[Output{"relay1", "on"}] = errNACK
		w.desire("", `{"heater": false, "cooler": true}`)
		w.step()
		if len(w.allWrite) != 0 {
			t.Fatalf("writes = %v, want none (heater off failed)", w.allWrite)
		}
		wantStatus(t, w.status("", "heater"), "fault", 500)
		delete(w.fail, Output{"relay1", "on"})
		w.now = w.now.Add(time.Second)
		w.settle()
		if !slices.Equal(w.allWrite, []string{"relay1.on=false", "relay2.on=true"}) {
			t.Fatalf("writes = %v after the fault cleared", w.allWrite)
		}
		wantStatus(t, w.status("", "cooler"), "applied", 200)
		wantStatus(t, w.status("", "heater"), "applied", 200)
	})
}

func TestTransforms(t *testing.T) {
	tests := []struct {
		name     string
		key      DesiredKey
		prop     *devices.Property
		desired  string
		device   devices.Value
		readBack devices.Value // hardware's own value, reported back
		report   any
	}{
		{"scale", DesiredKey{Type: devices.TypeNumber, Transform: Transform{Scale: 0.01}}, nil,
			`70`, devices.Number(0.7), devices.Number(0.25), 25.0},
		{"offset", DesiredKey{Type: devices.TypeNumber, Transform: Transform{Offset: 273.15}}, nil,
			`20`, devices.Number(293.15), devices.Number(300), 26.85},
		{"invert bool", DesiredKey{Type: devices.TypeBool, Transform: Transform{Invert: true}}, nil,
			`true`, devices.Bool(false), devices.Bool(true), false},
		{"invert number in device range", DesiredKey{Type: devices.TypeNumber, Transform: Transform{Invert: true}},
			&devices.Property{Type: devices.TypeNumber, Range: &devices.Range{Min: 0, Max: 1}},
			`0.2`, devices.Number(0.8), devices.Number(0.1), 0.9},
		{"calibrate two points", DesiredKey{Type: devices.TypeNumber, Transform: Transform{Calibrate: []CalPoint{{0, 10}, {100, 30}}}}, nil,
			`50`, devices.Number(20), devices.Number(12), 10.0},
		{"calibrate least squares", DesiredKey{Type: devices.TypeNumber, Transform: Transform{Calibrate: []CalPoint{{0, 0}, {1, 2.1}, {2, 3.9}}}}, nil,
			// fit: y = 1.95x + 0.05
			`2`, devices.Number(3.95), devices.Number(2), 1.0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.key
			k.Key, k.Device, k.Property = KeyPath{Path: "x"}, "d", "p"
			w := newWorld(t, &Spec{Desired: []DesiredKey{k}})
			if tc.prop != nil {
				w.props = map[Output]devices.Property{{"d", "p"}: *tc.prop}
			}
			w.hw[Output{"d", "p"}] = tc.readBack // differs from the target
			w.desire("", `{"x": `+tc.desired+`}`)
			w.step()
			if len(w.writes) != 1 || !sameValue(w.writes[0].Value, tc.device) {
				t.Fatalf("writes = %v, want d.p=%v", w.writes, tc.device)
			}
			var want any
			if err := json.Unmarshal([]byte(tc.desired), &want); err != nil {
				t.Fatal(err)
			}
			if got := w.reported("", "x"); !shadowdoc.Equal(got, want) {
				t.Fatalf("reported %v right after applying %s: the inverse transform does not give the value back", got, tc.desired)
			}
			w.hw[Output{"d", "p"}] = tc.readBack
			w.desire("", `{"x": null}`)
			w.step()
			if got := w.reported("", "x"); !shadowdoc.Equal(got, tc.report) {
				t.Fatalf("hardware at %v reported as %v, want %v", tc.readBack, got, tc.report)
			}
		})
	}
}

func TestMinToggleIntervalDefersAndThenApplies(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"pump": true}`)
	w.settle()
	w.now = w.now.Add(10 * time.Second)
	w.desire("", `{"pump": false}`)
	if got := w.step(); len(got) != 0 {
		t.Fatalf("writes = %v, want the toggle deferred", got)
	}
	st := w.status("", "pump")
	wantStatus(t, st, "pending", 202)
	applyAt := t0.Add(30 * time.Second)
	if num(t, st["apply_at"]) != float64(applyAt.Unix()) || !w.rep.Wake.Equal(applyAt) {
		t.Fatalf("apply_at %v, wake %v; want %v", st["apply_at"], w.rep.Wake, applyAt)
	}
	// Woken early (another delta): still nothing, and nothing re-reported.
	w.now = w.now.Add(5 * time.Second)
	w.step()
	if len(w.dec.Writes) != 0 || len(w.rep.Reported) != 0 {
		t.Fatalf("early wake wrote %v and reported %v", w.dec.Writes, w.rep.Reported)
	}
	w.now = applyAt
	if got := w.step(); !slices.Equal(got, []string{"relay3.on=false"}) {
		t.Fatalf("writes at apply_at = %v", got)
	}
	wantStatus(t, w.status("", "pump"), "applied", 200)
	if !w.rep.Wake.IsZero() {
		t.Fatalf("wake = %v after applying, want none", w.rep.Wake)
	}
}

func TestMinToggleIntervalSurvivesRestart(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"pump": true}`)
	w.settle()
	// Restart 5 s later: state from disk, shadow not yet fetched, the HAL
	// opened the relay off.
	w.now = w.now.Add(5 * time.Second)
	w.hw[Output{"relay3", "on"}] = devices.Bool(false)
	saved := w.shadows[""]
	w.shadows[""] = nil
	w.allWrite = nil
	w.step()
	// Restoring the last applied value is a change of the hardware; it
	// is deferred like any other toggle.
	if len(w.allWrite) != 0 {
		t.Fatalf("writes = %v within the pump's 30 s", w.allWrite)
	}
	w.now = t0.Add(30 * time.Second)
	w.shadows[""] = saved
	w.settle()
	if !slices.Equal(w.allWrite, []string{"relay3.on=true"}) {
		t.Fatalf("writes = %v, want the pump restored once", w.allWrite)
	}
}

func TestBoot(t *testing.T) {
	t.Run("fresh device: boot values before the shadow is known", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.hw[Output{"relay3", "on"}] = devices.Bool(true) // as the HAL opened it
		w.shadows[""], w.shadows["lights"] = nil, nil
		if got := w.step(); !slices.Equal(got, []string{"relay3.on=false"}) {
			t.Fatalf("writes = %v, want the pump's boot value", got)
		}
		if len(w.rep.Reported) != 0 {
			t.Fatalf("reported %v to a shadow not known yet", w.rep.Reported)
		}
	})
	t.Run("restart restores what was applied, not the boot value", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"pump": true, "heater": true}`)
		w.settle()
		w.now = w.now.Add(time.Hour)
		w.allWrite = nil
		w.hw[Output{"relay3", "on"}] = devices.Bool(false)
		w.hw[Output{"relay1", "on"}] = devices.Bool(false)
		saved := w.shadows[""]
		w.shadows[""] = nil
		w.step()
		w.shadows[""] = saved
		w.settle()
		if !slices.Equal(w.allWrite, []string{"relay1.on=true", "relay3.on=true"}) {
			t.Fatalf("writes = %v, want heater and pump restored once each", w.allWrite)
		}
	})
	t.Run("kill -9 with the hardware still set: no toggles", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"pump": true, "fan": 55}`)
		w.settle()
		w.allWrite = nil
		w.now = w.now.Add(time.Hour)
		saved := w.shadows[""]
		w.shadows[""] = nil
		w.step()
		w.shadows[""] = saved
		w.settle()
		if len(w.allWrite) != 0 {
			t.Fatalf("writes = %v, want none", w.allWrite)
		}
	})
}

func TestFailsafe(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"heater": true}`)
	w.settle()
	w.allWrite = nil
	w.offline = 4 * time.Minute
	w.now = w.now.Add(4 * time.Minute)
	if got := w.step(); len(got) != 0 {
		t.Fatalf("writes = %v before failsafe_after", got)
	}
	w.offline = 5 * time.Minute
	w.now = w.now.Add(time.Minute)
	failAt := w.now
	if got := w.step(); !slices.Equal(got, []string{"relay1.on=false"}) {
		t.Fatalf("writes = %v, want the heater's failsafe", got)
	}
	if w.rep.Results[KeyPath{Path: "heater"}].Status != Failsafe {
		t.Fatalf("result = %v, want failsafe", w.rep.Results[KeyPath{Path: "heater"}])
	}
	// Still offline: stays in failsafe, no toggles.
	w.offline = 20 * time.Minute
	w.now = w.now.Add(15 * time.Minute)
	w.step()
	if len(w.dec.Writes) != 0 {
		t.Fatalf("rewrote %v while in failsafe", w.dec.Writes)
	}
	// Reconnect: desired applies again and the status says there was a
	// failsafe, even though the failsafe report itself was coalesced away.
	w.offline = 0
	w.settle()
	if !slices.Equal(w.allWrite, []string{"relay1.on=false", "relay1.on=true"}) {
		t.Fatalf("writes = %v", w.allWrite)
	}
	st := w.status("", "heater")
	wantStatus(t, st, "applied", 200)
	if num(t, st["failsafe_at"]) != float64(failAt.Unix()) {
		t.Fatalf("status %v: want failsafe_at %d", st, failAt.Unix())
	}
}

func TestWriteFaultIsReportedAndRetriedWithBackoff(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.fail[Output{"fan", "duty"}] = errNACK
	w.desire("", `{"fan": 20}`)
	w.step()
	st := w.status("", "fan")
	wantStatus(t, st, "fault", 500)
	if !strings.Contains(st["message"].(string), "i2c: NACK") || num(t, st["retry_at"]) != float64(t0.Add(time.Second).Unix()) {
		t.Fatalf("status = %v", st)
	}
	if _, ok := w.desired("", "fan"); !ok {
		t.Fatal("a hardware fault triggered on_reject")
	}
	// Before the retry time nothing is tried.
	w.now = t0.Add(500 * time.Millisecond)
	if w.step(); len(w.dec.Writes) != 0 {
		t.Fatalf("retried at once: %v", w.dec.Writes)
	}
	w.now = t0.Add(time.Second)
	w.step()
	if len(w.dec.Writes) != 1 || num(t, w.status("", "fan")["retry_at"]) != float64(t0.Add(3*time.Second).Unix()) {
		t.Fatalf("second attempt %v, status %v; want a retry 2 s later", w.dec.Writes, w.status("", "fan"))
	}
	delete(w.fail, Output{"fan", "duty"})
	w.now = t0.Add(3 * time.Second)
	w.settle()
	wantStatus(t, w.status("", "fan"), "applied", 200)
	if num(t, w.reported("", "fan")) != 20 {
		t.Fatalf("reported fan = %v", w.reported("", "fan"))
	}
}

func TestNamedShadowAndNestedKey(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.hw[Output{"relay4", "on"}] = devices.Bool(true) // active low: off
	w.desire("lights", `{"lights": {"kitchen": true, "hall": true}}`)
	if got := w.step(); !slices.Equal(got, []string{"relay4.on=false"}) {
		t.Fatalf("writes = %v, want the active-low relay driven low", got)
	}
	if w.reported("lights", "lights.kitchen") != true {
		t.Fatalf("lights shadow reported = %v", w.shadows["lights"].Reported)
	}
	wantStatus(t, w.status("lights", "lights.kitchen"), "applied", 200)
	wantStatus(t, w.status("lights", "lights.hall"), "rejected", 404)
	if _, ok := w.shadows[""].Reported["lights"]; ok || w.shadows[""].Reported[StatusKey] != nil {
		t.Fatalf("classic shadow got %v", w.shadows[""].Reported)
	}
}

func TestStateJSONRoundTripKeepsDecisions(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"pump": true, "fan": 12.5, "mode": "turbo"}`)
	w.desire("lights", `{"lights": {"kitchen": false}}`)
	w.settle()
	b, err := json.Marshal(w.state)
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	in := w.input()
	a := Plan(in)
	in.State = st
	c := Plan(in)
	if len(a.Writes) != 0 || len(c.Writes) != 0 {
		t.Fatalf("writes after settling: %v / %v", a.Writes, c.Writes)
	}
	if ra, rc := a.Outcome(nil), c.Outcome(nil); len(ra.Reported) != 0 || len(rc.Reported) != 0 {
		t.Fatalf("reports after settling: %v / %v", ra.Reported, rc.Reported)
	}
	if !strings.Contains(string(b), `"/pump"`) || !strings.Contains(string(b), `"lights/lights.kitchen"`) {
		t.Fatalf("state keys not readable: %s", b)
	}
}

func TestInterlockWaitsForADeferredOff(t *testing.T) {
	spec := greenhouse()
	spec.Desired[0].Safety.MinToggleInterval = time.Minute // heater
	w := newWorld(t, spec)
	w.desire("", `{"heater": true}`)
	w.settle()
	w.allWrite = nil
	w.now = t0.Add(20 * time.Second)
	w.desire("", `{"heater": false, "cooler": true}`)
	w.step()
	if len(w.allWrite) != 0 {
		t.Fatalf("writes = %v; the heater may not switch yet, so the cooler must wait too", w.allWrite)
	}
	st := w.status("", "cooler")
	wantStatus(t, st, "pending", 202)
	if !strings.Contains(st["message"].(string), "waits for heater to switch off") || num(t, st["apply_at"]) != float64(t0.Add(time.Minute).Unix()) {
		t.Fatalf("cooler status = %v", st)
	}
	w.now = t0.Add(time.Minute)
	w.settle()
	if !slices.Equal(w.allWrite, []string{"relay1.on=false", "relay2.on=true"}) {
		t.Fatalf("writes = %v, want heater off then cooler on", w.allWrite)
	}
}

func TestInterlockPartnerUnknownBlocks(t *testing.T) {
	w := newWorld(t, greenhouse())
	delete(w.hw, Output{"relay2", "on"}) // the daemon could not read the cooler
	w.desire("", `{"heater": true}`)
	w.step()
	if len(w.allWrite) != 0 {
		t.Fatalf("writes = %v while the cooler's state is unknown", w.allWrite)
	}
	st := w.status("", "heater")
	wantStatus(t, st, "pending", 202)
	if !strings.Contains(st["message"].(string), "waits until the state of cooler (relay2.on) is known") {
		t.Fatalf("message = %v", st["message"])
	}
	w.hw[Output{"relay2", "on"}] = devices.Bool(false)
	w.settle()
	if !slices.Equal(w.allWrite, []string{"relay1.on=true"}) {
		t.Fatalf("writes = %v once the cooler is known off", w.allWrite)
	}
}

func TestFailsafeEndsWithNothingDesired(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"heater": true}`)
	w.settle()
	w.desire("", `{"heater": null}`) // nothing desired any more
	w.settle()
	w.offline, w.now = 6*time.Minute, w.now.Add(6*time.Minute)
	w.step()
	w.offline = 0
	w.settle()
	if !slices.Equal(w.allWrite, []string{"relay1.on=true", "relay1.on=false", "relay1.on=true"}) {
		t.Fatalf("writes = %v, want on, failsafe off, back on", w.allWrite)
	}
	st := w.status("", "heater")
	wantStatus(t, st, "applied", 200)
	if !strings.Contains(st["message"].(string), "failsafe ended") {
		t.Fatalf("status = %v", st)
	}
	// Out of failsafe with nothing desired, the output is left alone again.
	w.hw[Output{"relay1", "on"}] = devices.Bool(false) // switched by hand
	w.settle()
	if len(w.allWrite) != 3 {
		t.Fatalf("writes = %v: the hand-switched heater was overridden", w.allWrite)
	}
	if w.reported("", "heater") != false {
		t.Fatalf("reported heater = %v, want what the hardware has", w.reported("", "heater"))
	}
}

func TestDesiredRemovedLeavesHardwareAlone(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"fan": 30}`)
	w.settle()
	w.desire("", `{"fan": null}`)
	w.hw[Output{"fan", "duty"}] = devices.Number(0.8) // changed by hand
	w.settle()
	if !slices.Equal(w.allWrite, []string{"fan.duty=0.3"}) {
		t.Fatalf("writes = %v; with nothing desired the fan is not touched", w.allWrite)
	}
	if num(t, w.reported("", "fan")) != 80 {
		t.Fatalf("reported fan = %v, want what the hardware has (80)", w.reported("", "fan"))
	}
}

func TestWithdrawnDesiredRemovesAPendingOrFaultStatus(t *testing.T) {
	t.Run("pending", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.desire("", `{"pump": true}`)
		w.settle()
		w.now = w.now.Add(5 * time.Second)
		w.desire("", `{"pump": false}`)
		w.settle()
		wantStatus(t, w.status("", "pump"), "pending", 202)
		w.desire("", `{"pump": null}`)
		w.settle()
		if st := w.status("", "pump"); st != nil {
			t.Fatalf("status = %v after desired was withdrawn, want none", st)
		}
		w.now = w.now.Add(time.Minute)
		w.settle()
		if !slices.Equal(w.allWrite, []string{"relay3.on=true"}) {
			t.Fatalf("writes = %v: the withdrawn toggle was still made", w.allWrite)
		}
	})
	t.Run("fault", func(t *testing.T) {
		w := newWorld(t, greenhouse())
		w.fail[Output{"fan", "duty"}] = errNACK
		w.desire("", `{"fan": 20}`)
		w.settle()
		wantStatus(t, w.status("", "fan"), "fault", 500)
		w.desire("", `{"fan": null}`)
		w.settle()
		if st := w.status("", "fan"); st != nil {
			t.Fatalf("status = %v after desired was withdrawn, want none", st)
		}
		if !w.rep.Wake.IsZero() {
			t.Fatalf("still retrying (wake %v)", w.rep.Wake)
		}
	})
}

func TestStatusPatchNullsFieldsTheNewStatusLacks(t *testing.T) {
	old := map[string]any{"status": "fault", "code": json.Number("500"), "message": "NACK", "retry_at": json.Number("5"), "version": json.Number("2"), "at": json.Number("1")}
	want := Result{Status: Applied, Code: CodeApplied, Version: 2, At: time.Unix(9, 0)}.Doc()
	p, change := statusPatch(old, want)
	if !change {
		t.Fatal("no change reported")
	}
	if v, ok := p["message"]; !ok || v != nil {
		t.Fatalf("patch %v does not null the old message", p)
	}
	if v, ok := p["retry_at"]; !ok || v != nil {
		t.Fatalf("patch %v does not null the old retry_at", p)
	}
	if merged := merge(roundTrip(t, old), roundTrip(t, p)); !shadowdoc.Equal(merged, want) {
		t.Fatalf("merged status = %v, want %v", merged, want)
	}
	if _, change := statusPatch(roundTrip(t, want), want); change {
		t.Fatal("identical status (numbers as json.Number) counted as a change")
	}
}

func TestStateRemembersTheAppliedValueAndVersion(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"fan": 25}`)
	v := w.shadows[""].Version
	w.settle()
	w.desire("", `{"fan": 250}`)
	w.settle()
	ks := w.state.Keys[KeyPath{Path: "fan"}]
	if !shadowdoc.Equal(ks.Applied, 25.0) || ks.AppliedVersion != v {
		t.Fatalf("state = applied %v at version %d, want 25 at %d (the rejected 250 is not applied)", ks.Applied, ks.AppliedVersion, v)
	}
}

func TestFailsafeAtItsValueAlreadyEndsCleanly(t *testing.T) {
	w := newWorld(t, greenhouse())
	w.desire("", `{"heater": false}`)
	w.settle()
	w.desire("", `{"heater": null}`)
	w.settle()
	// Offline past failsafe_after: the heater already is at its failsafe
	// value, nothing to write.
	w.offline, w.now = 6*time.Minute, w.now.Add(6*time.Minute)
	w.settle()
	w.offline = 0
	w.settle()
	w.hw[Output{"relay1", "on"}] = devices.Bool(true) // switched by hand
	w.settle()
	if len(w.allWrite) != 0 {
		t.Fatalf("writes = %v: with nothing desired and the failsafe over, the hand-switched heater must be left alone", w.allWrite)
	}
}
