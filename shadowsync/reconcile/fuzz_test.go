package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/devices"
)

// fuzzSpec is greenhouse plus a second interlock group with a number key
// (the fan counts as on above 0).
func fuzzSpec() *Spec {
	s := greenhouse()
	s.Interlocks = append(s.Interlocks, Interlock{Name: "air", Keys: []KeyPath{{Path: "fan"}, {Path: "cooler"}}})
	for i := range s.Desired {
		if s.Desired[i].Key.Path == "heater" {
			s.Desired[i].Safety.MinToggleInterval = time.Minute
		}
	}
	return s
}

// FuzzPlan: arbitrary desired JSON, hardware state and offline time. Plan
// never panics, never writes a value outside the key's range or the
// device's, never switches a key on while an interlocked partner is (or
// may be) on, gives the same answer twice, and once its writes are made a
// second Plan at the same instant has nothing left to write.
func FuzzPlan(f *testing.F) {
	f.Add([]byte(`{"heater": true, "cooler": true}`), uint8(0), uint8(0))
	f.Add([]byte(`{"heater": false, "cooler": true, "fan": 50}`), uint8(1), uint8(0))
	f.Add([]byte(`{"fan": "50", "mode": 3, "x": {"y": null}}`), uint8(7), uint8(10))
	f.Fuzz(func(t *testing.T, desired []byte, hw uint8, offlineMin uint8) {
		dec := json.NewDecoder(bytes.NewReader(desired))
		dec.UseNumber()
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			return
		}
		spec := fuzzSpec()
		obs := map[Output]devices.Value{
			{"relay1", "on"}: devices.Bool(hw&1 != 0),
			{"relay2", "on"}: devices.Bool(hw&2 != 0),
			{"fan", "duty"}:  devices.Number(float64(hw>>2&3) / 4),
			{"ctl", "mode"}:  devices.Enum("auto"),
		}
		if hw&16 != 0 {
			delete(obs, Output{"relay2", "on"}) // unknown
		}
		st := State{Outputs: map[Output]OutputState{}}
		if hw&32 != 0 {
			st.Outputs[Output{"relay1", "on"}] = OutputState{LastChange: t0.Add(-10 * time.Second)}
		}
		props := map[Output]devices.Property{{"fan", "duty"}: {Name: "duty", Type: devices.TypeNumber, Range: &devices.Range{Min: 0, Max: 1}, Writable: true}}
		in := Input{
			Spec:     spec,
			Shadows:  map[string]Shadow{"": {Version: 3, Desired: doc}, "lights": {Version: 1, Desired: doc}},
			Observed: obs,
			Props:    props,
			State:    st,
			Offline:  time.Duration(offlineMin) * time.Minute,
			Now:      t0,
		}
		d := Plan(in)
		d2 := Plan(in)
		if fmt.Sprint(d.Writes, d.Results, d.Wake) != fmt.Sprint(d2.Writes, d2.Results, d2.Wake) {
			t.Fatalf("same input, different decisions:\n%v\n%v", d.Writes, d2.Writes)
		}

		keys := map[KeyPath]*DesiredKey{}
		for i := range spec.Desired {
			keys[spec.Desired[i].Key] = &spec.Desired[i]
		}
		// Simulate the writes in order and check every intermediate state.
		hwNow := map[Output]devices.Value{}
		for o, v := range obs {
			hwNow[o] = v
		}
		onNow := func(k *DesiredKey) bool {
			v, ok := hwNow[Output{k.Device, k.Property}]
			if !ok {
				return true // unknown: may be on
			}
			tr, _ := newTransform(k, nil)
			if p, ok := props[Output{k.Device, k.Property}]; ok {
				tr, _ = newTransform(k, &p)
			}
			return isOn(tr.toShadow(v))
		}
		var done []Done
		for i, w := range d.Writes {
			k := keys[w.Key]
			if k == nil {
				t.Fatalf("write %v for a key not in the spec", w)
			}
			if !d.Ready(i, nil) && len(w.Needs) == 0 {
				t.Fatal("Ready false without needs")
			}
			if w.Shadow.Type() != k.Type || (k.Range != nil && (w.Shadow.Number() < k.Range.Min || w.Shadow.Number() > k.Range.Max)) {
				t.Fatalf("write %v: shadow value outside the key's contract", w)
			}
			if p, ok := props[w.Output]; ok {
				if err := p.Check(w.Value); err != nil {
					t.Fatalf("write %v: %v", w, err)
				}
			}
			for _, n := range w.Needs {
				if n >= i {
					t.Fatalf("write %d needs a later write %d", i, n)
				}
			}
			if isOn(w.Shadow) {
				for _, g := range spec.Interlocks {
					if !containsKey(g.Keys, w.Key) {
						continue
					}
					for _, pk := range g.Keys {
						if pk != w.Key && onNow(keys[pk]) {
							t.Fatalf("write %d %v switches %s on while %s is on (writes %v, hw %v)", i, w, w.Key.Path, pk.Path, d.Writes, hwNow)
						}
					}
				}
			}
			hwNow[w.Output] = w.Value
			done = append(done, Done{})
		}
		rep := d.Outcome(done)
		r2 := d2.Outcome(done)
		b1, _ := json.Marshal(rep)
		b2, _ := json.Marshal(r2)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("same input, different outcomes:\n%s\n%s", b1, b2)
		}
		// Converged: with the writes made and the reported patches accepted,
		// nothing is left to write or report at the same instant. (An
		// on_reject desired patch is new desired input, and may legitimately
		// unblock an interlocked partner, so it is not applied here.)
		next := in
		next.Observed, next.State = rep.Observed, rep.State
		next.Shadows = map[string]Shadow{}
		for name, sh := range in.Shadows {
			sh.Reported = merge(map[string]any{}, roundTrip(t, rep.Reported[name]))
			next.Shadows[name] = sh
		}
		if d3 := Plan(next); len(d3.Writes) != 0 {
			t.Fatalf("not converged: second Plan writes %v after %v", d3.Writes, d.Writes)
		} else if r3 := d3.Outcome(nil); len(r3.Reported) != 0 {
			t.Fatalf("not converged: second Outcome reports %v after %v", r3.Reported, rep.Reported)
		}
	})
}

func containsKey(ks []KeyPath, k KeyPath) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}
