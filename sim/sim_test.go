package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/configs"
	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/devices/builtin"
	"github.com/pinshadow/pinshadow/hal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func simConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse(configs.SimName, config.Options{
		ReadFile:  func(string) ([]byte, error) { return configs.Sim(), nil },
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDefaultScenarioFitsTheSimConfig(t *testing.T) {
	sc, err := ParseScenario(configs.DefaultScenarioName, configs.DefaultScenario())
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Check(simConfig(t)); err != nil {
		t.Fatal(err)
	}
	kinds := map[StepKind]bool{}
	for i, st := range sc.Steps {
		kinds[st.Kind] = true
		if i > 0 && st.At < sc.Steps[i-1].At {
			t.Errorf("steps out of order at %d: %s after %s", i, st.At, sc.Steps[i-1].At)
		}
	}
	for _, k := range []StepKind{StepDesired, StepPress, StepFault, StepRestartBroker, StepSay, StepJob} {
		if !kinds[k] {
			t.Errorf("the default scenario shows no %s step", k)
		}
	}
	// The cmd test runs it with a 15.5 s duration: it must be over by then.
	if end := sc.End(); end > 15*time.Second {
		t.Errorf("the default scenario ends at %s; the end-to-end test stops at 15.5 s", end)
	}
}

func TestParseScenario(t *testing.T) {
	sc, err := ParseScenario("s.yaml", []byte(`
- {at: 3s, fault: {i2c_timeout: soil, for: 2s}}
- {at: 1s, desired: {fan: 40, lights: {kitchen: true}}, shadow: extra}
- {at: 2s, press: button, for: 1s}
- {at: 2s, ambient: -5.5}
- {at: 4s, job: {type: set-desired, desired: {fan: 20}}}
- {at: 4s, job: {type: pulse, key: status_led, value: true}}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, st := range sc.Steps {
		got = append(got, st.At.String()+" "+st.Describe())
	}
	want := []string{
		"1s desired fan=40 lights.kitchen=true (shadow extra)",
		"2s press button for 1s",
		"2s ambient temperature -5.5 °C",
		"3s i2c_timeout on soil for 2s",
		"4s job sim-job-1: set-desired desired.fan=20",
		"4s job sim-job-2: pulse key=\"status_led\" value=true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if sc.End() != 5*time.Second {
		t.Errorf("End = %s, want 5s (the fault at 3s lasts 2s)", sc.End())
	}
	if sc.Steps[1].For != time.Second {
		t.Errorf("press for = %s", sc.Steps[1].For)
	}
}

func TestParseScenarioProblems(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", "s.yaml:1:1: the scenario is empty; want a list of steps such as - {at: 2s, desired: {fan: 40}}"},
		{"mapping", "at: 1s\n", "s.yaml:1:1: a scenario is a list of steps, e.g. - {at: 2s, desired: {fan: 40}}"},
		{"not yaml", "- {at: 1s\n", "s.yaml:1: not valid YAML: did not find expected ',' or '}'"},
		{"step not a mapping", "- [1]\n", "s.yaml:1:3: a step is a mapping such as {at: 2s, desired: {fan: 40}}"},
		{"no at", "- {say: hi}\n", `s.yaml:1:3: step without "at"; give the time from the start, e.g. at: 2s`},
		{"no action", "- {at: 1s}\n", "s.yaml:1:3: step without an action; give one of desired, press, fault, restart_broker, ambient, say, job"},
		{"two actions", "- {at: 1s, desired: {fan: 1}, press: button}\n", `s.yaml:1:31: one action per step: "desired" and "press" are in the same step; split them into two steps with the same at`},
		{"no unit", "- {at: 2.5, say: hi}\n", `s.yaml:1:8: at: "2.5" has no unit; add one: 2.5s`},
		{"not a duration", "- {at: soon, say: hi}\n", `s.yaml:1:8: at: "soon" is not a duration; want e.g. 2s, 500ms or 1m30s`},
		{"negative", "- {at: -1s, say: hi}\n", "s.yaml:1:8: at: -1s is negative; times count from the start of the run"},
		{"misspelt key", "- {at: 1s, desird: {fan: 1}}\n", `s.yaml:1:12: unknown step key "desird"; allowed: at, desired, shadow, press, for, fault, restart_broker, ambient, say, job; did you mean "desired"?`},
		{"misspelt fault", "- {at: 1s, fault: {i2c_nak: climate, for: 1s}}\n", `s.yaml:1:20: unknown fault key "i2c_nak"; allowed: i2c_nack, i2c_timeout, for; did you mean "i2c_nack"?`},
		{"fault without for", "- {at: 1s, fault: {i2c_nack: climate}}\n", "s.yaml:1:19: fault: say how long it lasts, e.g. for: 3s"},
		{"for outside fault", "- {at: 1s, fault: {i2c_nack: climate}, for: 1s}\n", "s.yaml:1:19: fault: say how long it lasts, e.g. for: 3s\ns.yaml:1:40: \"for\" goes with press here (a fault takes it inside: fault: {i2c_nack: DEVICE, for: 3s})"},
		{"shadow with press", "- {at: 1s, press: button, shadow: x}\n", `s.yaml:1:27: "shadow" goes with desired only`},
		{"desired not a mapping", "- {at: 1s, desired: 40}\n", "s.yaml:1:21: desired: want a mapping of shadow keys to values, e.g. {fan: 40}"},
		{"restart false", "- {at: 1s, restart_broker: false}\n", "s.yaml:1:28: restart_broker: want true"},
		{"ambient absurd", "- {at: 1s, ambient: 500}\n", `s.yaml:1:21: ambient: want a temperature in °C between -40 and 85, got "500"`},
		{"duplicate key", "- {at: 1s, at: 2s, say: x}\n", `s.yaml:1:12: "at" is given twice in this step`},
		{"job not a mapping", "- {at: 1s, job: pulse}\n", "s.yaml:1:17: job: want a job document such as {type: set-desired, desired: {fan: 20}}"},
		{"job without type", "- {at: 1s, job: {desired: {fan: 1}}}\n", `s.yaml:1:17: job: the document needs a "type", e.g. {type: pulse, key: status_led, value: true, seconds: 2}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseScenario("s.yaml", []byte(c.in))
			var probs config.Errors
			if !errors.As(err, &probs) {
				t.Fatalf("err = %v, want config.Errors", err)
			}
			if got := err.Error(); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestParseScenarioReportsEveryProblemInLineOrder(t *testing.T) {
	_, err := ParseScenario("s.yaml", []byte("- {at: 1, say: a}\n- {at: 1s}\n- {at: 1s, press: }\n"))
	want := "s.yaml:1:8: at: \"1\" has no unit; add one: 1s\n" +
		"s.yaml:2:3: step without an action; give one of desired, press, fault, restart_broker, ambient, say, job\n" +
		"s.yaml:3:19: press: want a device id, e.g. press: button"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

// The world's hardware behaves as the scenario and the physics say,
// seen through the same drivers the agent uses.
func TestWorldPhysicsPressesAndFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := simConfig(t)
	var changes []Change
	w, err := NewWorld(cfg, WorldOptions{Ambient: 10, Initial: 15, OnChange: func(c Change) { changes = append(changes, c) }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reg := builtin.NewRegistry()
	buses := devices.NewSharedBuses(w.HAL())
	defer buses.Close()
	env := devices.Env{Lines: w.HAL(), Buses: buses}
	open := func(id string) devices.Device {
		for _, d := range cfg.Devices {
			if d.ID == id {
				dev, err := reg.Open(ctx, d.Driver, env, d.Options)
				if err != nil {
					t.Fatalf("open %s: %v", id, err)
				}
				t.Cleanup(func() { dev.Close() })
				return dev
			}
		}
		t.Fatalf("no device %s", id)
		return nil
	}
	read := func(dev devices.Device, prop string) float64 {
		t.Helper()
		r, err := dev.Read(ctx)
		if err != nil {
			t.Fatalf("read %s: %v", prop, err)
		}
		return r[prop].Number()
	}
	heater, fan, climate, button, soil := open("heater"), open("fan"), open("climate"), open("button"), open("soil")

	t0 := read(climate, "temperature")
	if t0 < 14.9 || t0 > 15.1 {
		t.Fatalf("initial temperature %.2f, want 15", t0)
	}
	if err := heater.Write(ctx, "on", devices.Bool(true)); err != nil {
		t.Fatal(err)
	}
	w.step(20 * time.Second)
	t1 := read(climate, "temperature")
	if t1 < t0+2 {
		t.Errorf("20 s of heating: %.2f → %.2f °C, want at least +2", t0, t1)
	}
	h1 := read(climate, "humidity")
	if err := heater.Write(ctx, "on", devices.Bool(false)); err != nil {
		t.Fatal(err)
	}
	if err := fan.Write(ctx, "speed", devices.Number(100)); err != nil {
		t.Fatal(err)
	}
	w.step(20 * time.Second)
	if t2 := read(climate, "temperature"); t2 > t1-1 {
		t.Errorf("20 s of full fan: %.2f → %.2f °C, want at least −1", t1, t2)
	}
	if h2 := read(climate, "humidity"); h2 <= h1 {
		t.Errorf("cooler air should read more humid: %.1f → %.1f %%RH", h1, h2)
	}

	// The heater relay is active-low: on is a low wire, and the account is
	// told so with the device and the line as configured.
	var on *Change
	for i := range changes {
		if c := changes[i]; c.Device == "heater" && c.Level && !c.Open {
			on = &changes[i]
			break
		}
	}
	if on == nil || on.Line != "GPIO17" || on.Physical || !on.ActiveLow {
		t.Errorf("heater on change = %+v, want GPIO17 on with the wire low", on)
	}

	// Pressing the button is seen by the button driver.
	if r, _ := button.Read(ctx); r["pressed"].Bool() {
		t.Fatal("button pressed before the press")
	}
	if err := w.SetPressed("button", true); err != nil {
		t.Fatal(err)
	}
	if r, _ := button.Read(ctx); !r["pressed"].Bool() {
		t.Error("button not pressed after SetPressed")
	}

	// The soil dries: its voltage rises, so moisture falls.
	v0 := read(soil, "moisture")
	w.step(30 * time.Second)
	if v1 := read(soil, "moisture"); v1 <= v0+0.2 {
		t.Errorf("30 s of drying: probe %.3f → %.3f V, want a rise of 0.3 V", v0, v1)
	}

	// A NACK fault makes the chip disappear until it ends.
	if err := w.SetFault("climate", FaultI2CNACK); err != nil {
		t.Fatal(err)
	}
	if _, err := climate.Read(ctx); !errors.Is(err, hal.ErrNACK) {
		t.Errorf("read during the fault: %v, want a NACK", err)
	}
	if _, err := soil.Read(ctx); err != nil {
		t.Errorf("the other chip on the bus must keep answering: %v", err)
	}
	if err := w.SetFault("climate", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := climate.Read(ctx); err != nil {
		t.Errorf("read after the fault: %v", err)
	}
	if err := w.SetFault("heater", FaultI2CNACK); err == nil {
		t.Error("a fault on a GPIO device must be refused")
	}
}

func TestAccountCorrelatesADesiredChange(t *testing.T) {
	cfg := simConfig(t)
	var buf bytes.Buffer
	start := time.Unix(1000, 0)
	a := NewAccount(&buf, cfg, AccountOptions{Start: start, JSON: true})
	a.Sent("", map[string]any{"fan": 40}, start.Add(time.Second))
	a.Change(Change{Time: start.Add(time.Second + 2*time.Millisecond), Device: "fan", Line: "GPIO18", PWM: true, Duty: 0.4, Freq: 25000})
	var d Documents
	d.Previous.State.Desired = map[string]any{"fan": 40.0}
	d.Previous.State.Reported = map[string]any{"fan": 0.0, "temperature": 16.0}
	d.Current.State.Desired = map[string]any{"fan": 40.0}
	d.Current.State.Reported = map[string]any{"fan": 40.0, "temperature": 16.5}
	d.Current.Version = 7
	d.Received = start.Add(time.Second + 5*time.Millisecond)
	a.Document("", d, false)

	var kinds []string
	var cleared map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		kinds = append(kinds, m["kind"].(string))
		if m["kind"] == KindInSync {
			cleared = m
		}
	}
	if got := strings.Join(kinds, " "); got != "desired pwm reported report in-sync" {
		t.Errorf("kinds %q", got)
	}
	if cleared == nil || cleared["latency_ms"] != 5.0 || cleared["t"] != 1.005 {
		t.Errorf("in-sync line %v, want latency 5 ms at 1.005 s", cleared)
	}
}

// Every shipped configuration runs in the simulation: each device opens
// on the simulated world (a chip model answers at every I2C address, the
// sysfs files exist) and reads without error.
func TestEveryShippedConfigOpensAndReadsInTheWorld(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs: %v", err)
	}
	reg := builtin.NewRegistry()
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cfg, err := config.Parse(f, config.Options{
				LookupEnv: func(string) (string, bool) { return "", false },
				// board: auto is a Pi 4 here, as in agent sim.
				Detect: func() board.Detection {
					p, _ := board.ByName("pi4b")
					return board.Detection{Profile: p, Source: "override"}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			w, err := NewWorld(cfg, WorldOptions{SysRoot: root})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			buses := devices.NewSharedBuses(w.HAL())
			defer buses.Close()
			env := devices.Env{Lines: w.HAL(), Buses: buses, SysRoot: root}
			for _, d := range cfg.Devices {
				dev, err := reg.Open(ctx, d.Driver, env, d.Options)
				if err != nil {
					t.Errorf("device %s (%s): %v", d.ID, d.Driver, err)
					continue
				}
				readable := false
				for _, p := range dev.Properties() {
					readable = readable || p.Readable
				}
				if readable {
					if _, err := dev.Read(ctx); err != nil {
						t.Errorf("device %s (%s): read: %v", d.ID, d.Driver, err)
					}
				}
				dev.Close()
			}
		})
	}
}
