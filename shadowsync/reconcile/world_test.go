package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/devices"
)

// t0 is the tests' epoch.
var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func f64(x float64) *float64 { return &x }

// greenhouse is the spec most tests use.
func greenhouse() *Spec {
	return &Spec{
		Desired: []DesiredKey{
			{Key: KeyPath{Path: "heater"}, Device: "relay1", Property: "on", Type: devices.TypeBool,
				Safety: Safety{Failsafe: devices.Bool(false), FailsafeAfter: 5 * time.Minute}},
			{Key: KeyPath{Path: "cooler"}, Device: "relay2", Property: "on", Type: devices.TypeBool},
			{Key: KeyPath{Path: "fan"}, Device: "fan", Property: "duty", Type: devices.TypeNumber, Unit: "%",
				Range: &devices.Range{Min: 0, Max: 100}, Transform: Transform{Scale: 0.01}, OnReject: ClearDesired},
			{Key: KeyPath{Path: "mode"}, Device: "ctl", Property: "mode", Type: devices.TypeEnum,
				Choices: []string{"auto", "manual"}, OnReject: Revert},
			{Key: KeyPath{Path: "pump"}, Device: "relay3", Property: "on", Type: devices.TypeBool,
				Safety: Safety{MinToggleInterval: 30 * time.Second, Boot: devices.Bool(false)}},
			{Key: KeyPath{Shadow: "lights", Path: "lights.kitchen"}, Device: "relay4", Property: "on", Type: devices.TypeBool,
				Transform: Transform{Invert: true}},
		},
		Interlocks: []Interlock{{Name: "climate", Keys: []KeyPath{{Path: "heater"}, {Path: "cooler"}}}},
	}
}

// world simulates the daemon's loop around Plan and Outcome: the cloud's
// documents, the hardware and the persisted state.
type world struct {
	t        *testing.T
	spec     *Spec
	shadows  map[string]*Shadow // nil entry: shadow not known yet
	hw       map[Output]devices.Value
	props    map[Output]devices.Property
	state    State
	offline  time.Duration
	now      time.Time
	fail     map[Output]error                              // writes to these fail
	readBack func(o Output, v devices.Value) devices.Value // what the hardware settles at

	// last step's observations
	writes   []Write
	dec      Decision
	rep      Report
	allWrite []string // every write made, "relay1.on=true"
}

func newWorld(t *testing.T, spec *Spec) *world {
	t.Helper()
	w := &world{t: t, spec: spec, now: t0, hw: map[Output]devices.Value{}, fail: map[Output]error{},
		shadows: map[string]*Shadow{}}
	for _, k := range spec.Desired {
		if _, ok := w.shadows[k.Key.Shadow]; !ok {
			w.shadows[k.Key.Shadow] = &Shadow{Version: 1, Desired: map[string]any{}, Reported: map[string]any{}}
		}
		w.hw[Output{k.Device, k.Property}] = zeroOf(k)
	}
	return w
}

// zeroOf is the output's power-on value as a HAL opens it (device terms).
func zeroOf(k DesiredKey) devices.Value {
	switch k.Type {
	case devices.TypeBool:
		return devices.Bool(false)
	case devices.TypeNumber:
		return devices.Number(0)
	}
	return devices.Enum(k.Choices[0])
}

// desire patches desired the way the cloud would (JSON in, null deletes).
func (w *world) desire(shadow, js string) {
	w.t.Helper()
	var patch map[string]any
	dec := json.NewDecoder(stringsReader(js))
	dec.UseNumber()
	if err := dec.Decode(&patch); err != nil {
		w.t.Fatalf("bad test JSON %s: %v", js, err)
	}
	sh := w.shadows[shadow]
	sh.Desired = merge(sh.Desired, patch)
	sh.Version++
}

func (w *world) input() Input {
	shadows := map[string]Shadow{}
	for name, sh := range w.shadows {
		if sh != nil {
			shadows[name] = *sh
		}
	}
	obs := map[Output]devices.Value{}
	for o, v := range w.hw {
		obs[o] = v
	}
	return Input{Spec: w.spec, Shadows: shadows, Observed: obs, Props: w.props, State: w.state, Offline: w.offline, Now: w.now}
}

// step runs one loop iteration: Plan, the writes, Outcome, then the
// cloud accepting the patches. It returns the writes made.
func (w *world) step() []string {
	w.t.Helper()
	in := w.input()
	d := Plan(in)
	// Same input, same decision.
	if d2 := Plan(in); fmt.Sprint(d2.Writes) != fmt.Sprint(d.Writes) || fmt.Sprint(d2.Results) != fmt.Sprint(d.Results) {
		w.t.Fatalf("Plan is not deterministic:\n%v\n%v", d.Writes, d2.Writes)
	}
	var done []Done
	var made []string
	for i, wr := range d.Writes {
		if !d.Ready(i, done) {
			done = append(done, Done{Skipped: true})
			continue
		}
		if err := w.fail[wr.Output]; err != nil {
			done = append(done, Done{Err: err})
			continue
		}
		v := wr.Value
		if w.readBack != nil {
			v = w.readBack(wr.Output, v)
		}
		w.hw[wr.Output] = v
		made = append(made, fmt.Sprintf("%s=%v", wr.Output, wr.Value))
		done = append(done, Done{ReadBack: v})
	}
	rep := d.Outcome(done)
	// Persist through JSON, as the daemon does.
	b, err := json.Marshal(rep.State)
	if err != nil {
		w.t.Fatalf("state does not marshal: %v", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		w.t.Fatalf("state does not unmarshal: %v\n%s", err, b)
	}
	w.state = st
	for name, p := range rep.Reported {
		sh := w.shadows[name]
		sh.Reported = merge(sh.Reported, roundTrip(w.t, p))
		sh.Version++
	}
	for name, p := range rep.Desired {
		sh := w.shadows[name]
		sh.Desired = merge(sh.Desired, roundTrip(w.t, p))
		sh.Version++
	}
	w.dec, w.rep, w.writes = d, rep, d.Writes
	w.allWrite = append(w.allWrite, made...)
	return made
}

// settle steps until nothing is written or reported, failing after 5
// steps (a loop that never settles is a toggle or report storm).
func (w *world) settle() {
	w.t.Helper()
	for range 5 {
		w.step()
		if len(w.rep.Reported) == 0 && len(w.rep.Desired) == 0 && len(w.dec.Writes) == 0 {
			return
		}
	}
	w.t.Fatalf("did not settle: writes %v, reported %v, desired %v", w.dec.Writes, w.rep.Reported, w.rep.Desired)
}

func (w *world) reported(shadow, path string) any {
	v, _ := lookup(w.shadows[shadow].Reported, path)
	return v
}

func (w *world) status(shadow, path string) map[string]any {
	st, _ := statusOf(w.shadows[shadow].Reported, path).(map[string]any)
	return st
}

func (w *world) desired(shadow, path string) (any, bool) {
	return lookup(w.shadows[shadow].Desired, path)
}

// roundTrip passes a patch through JSON as the wire does.
func roundTrip(t *testing.T, p map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("patch does not marshal: %v (%v)", err, p)
	}
	var out map[string]any
	dec := json.NewDecoder(stringsReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// merge applies a patch as AWS does: nested merge, null deletes.
func merge(doc, patch map[string]any) map[string]any {
	if doc == nil {
		doc = map[string]any{}
	}
	for k, v := range patch {
		if v == nil {
			delete(doc, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			dm, _ := doc[k].(map[string]any)
			doc[k] = merge(dm, pm)
			continue
		}
		doc[k] = v
	}
	return doc
}

var errNACK = errors.New("i2c: NACK")
