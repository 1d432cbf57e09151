package reconcile_test

import (
	"fmt"
	"time"

	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/shadowsync/reconcile"
)

// One iteration of the daemon's loop: Plan, make the writes in order,
// Outcome, then persist the state and send the patches.
func ExamplePlan() {
	spec := &reconcile.Spec{
		Desired: []reconcile.DesiredKey{
			{Key: reconcile.KeyPath{Path: "heater"}, Device: "relay1", Property: "on", Type: devices.TypeBool},
			{Key: reconcile.KeyPath{Path: "fan"}, Device: "fan", Property: "duty", Type: devices.TypeNumber, Unit: "%",
				Range: &devices.Range{Min: 0, Max: 100}, Transform: reconcile.Transform{Scale: 0.01},
				OnReject: reconcile.ClearDesired},
		},
	}
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	in := reconcile.Input{
		Spec: spec,
		Shadows: map[string]reconcile.Shadow{
			"": {Version: 7, Desired: map[string]any{"heater": true, "fan": 150.0}},
		},
		Observed: map[reconcile.Output]devices.Value{
			{Device: "relay1", Property: "on"}: devices.Bool(false),
			{Device: "fan", Property: "duty"}:  devices.Number(0),
		},
		Now: now,
	}
	d := reconcile.Plan(in)
	var done []reconcile.Done
	for i, w := range d.Writes {
		if !d.Ready(i, done) {
			done = append(done, reconcile.Done{Skipped: true})
			continue
		}
		fmt.Printf("write %s = %v (%s %s)\n", w.Output, w.Value, w.Why, w.Key)
		// err := dev.Write(ctx, w.Output.Property, w.Value); readings, _ := dev.Read(ctx)
		done = append(done, reconcile.Done{ReadBack: w.Value})
	}
	rep := d.Outcome(done)
	// persist rep.State; shadow.Report(rep.Reported[name]); for a non-empty
	// rep.Desired[name], shadow.Update with that desired patch; arm a timer
	// for rep.Wake.
	fmt.Println("reported heater:", rep.Reported[""]["heater"])
	st := rep.Reported[""][reconcile.StatusKey].(map[string]any)
	fmt.Println("heater:", st["heater"].(map[string]any)["status"])
	fmt.Println("fan:", st["fan"].(map[string]any)["status"], st["fan"].(map[string]any)["message"])
	fmt.Println("desired patch:", rep.Desired[""])
	// Output:
	// write relay1.on = true (desired heater)
	// reported heater: true
	// heater: applied
	// fan: rejected fan: 150 % is outside 0…100 %
	// desired patch: map[fan:<nil>]
}
