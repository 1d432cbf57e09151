package agent

import (
	"context"
	"errors"
	"testing"
	"time"
)

// UpdateDesired goes through the shadow service like a cloud app's update:
// the agent gets the delta and writes the hardware, and its mirror
// (ShadowDocuments) shows the desired value.
func TestUpdateDesiredIsAppliedAndMirrored(t *testing.T) {
	r := newRig(t)
	a := r.start(greenhouse)
	r.ready()
	m := r.rec.mark()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.UpdateDesired(ctx, "", map[string]any{"heater": true}); err != nil {
		t.Fatalf("UpdateDesired: %v", err)
	}
	r.rec.waitFor(t, m, "heater write", func(e Event) bool { return e.Kind == EventWrite && e.Key == "heater" })
	if high, _ := r.hal.Physical("pinctrl-bcm2711/17"); high {
		t.Errorf("heater line high after desired true; want low (on, active low)")
	}
	// The delta went through the mirror before the write.
	docs := a.ShadowDocuments()
	if len(docs) != 1 || docs[0].Name != "" || !docs[0].Known || docs[0].Version == 0 || docs[0].Desired["heater"] != true {
		t.Errorf("mirror = %+v, want the classic shadow, known, with desired heater true", docs)
	}
	if err := a.UpdateDesired(ctx, "nope", map[string]any{"x": 1}); err == nil {
		t.Error("UpdateDesired of a shadow not in the configuration succeeded")
	}
}

func TestUpdateDesiredNeedsARunningAgent(t *testing.T) {
	a, err := New(parseConfig(t, greenhouse, t.TempDir()), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.UpdateDesired(context.Background(), "", map[string]any{"fan": 50}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("UpdateDesired before Run = %v, want ErrNotRunning", err)
	}
	if d := a.ShadowDocuments(); d != nil {
		t.Errorf("ShadowDocuments before Run = %v, want nil", d)
	}
}
