package agent

import (
	"testing"

	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// A desired change reaches the GPIO line and the PWM channel, the reported
// values are what the hardware has, and no delta is left.
func TestDesiredChangeReachesHardwareAndIsReported(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := newApp(t, r.cloud, "gh1")

	// Boot values were applied: heater off (active low: the wire is high).
	if high, ok := r.hal.Physical("pinctrl-bcm2711/17"); !ok || !high {
		t.Fatalf("heater line at boot: high=%v ok=%v, want high (off, active low)", high, ok)
	}
	m := r.rec.mark()
	app.desire(t, `{"heater": true, "fan": 50}`)
	r.rec.waitFor(t, m, "heater write", func(e Event) bool { return e.Kind == EventWrite && e.Key == "heater" })
	r.rec.waitFor(t, m, "fan write", func(e Event) bool { return e.Kind == EventWrite && e.Key == "fan" })
	if high, _ := r.hal.Physical("pinctrl-bcm2711/17"); high {
		t.Errorf("heater line is high after desired true; want low (on, active low)")
	}
	d := app.waitDoc(t, "heater and fan reported, no delta", func(d *shadowsync.Document) bool {
		f, _ := num(d.Reported["fan"])
		return d.Reported["heater"] == true && f == 50 && len(d.Delta) == 0
	})
	if st := status(d, "heater"); st["status"] != "applied" {
		t.Errorf("_status.heater = %v, want applied", st)
	}
	duty, _, enabled := r.hal.PWM("pwmchip0/0")
	if !enabled || duty < 0.49 || duty > 0.51 {
		t.Errorf("fan PWM duty %v enabled %v, want 0.5 enabled", duty, enabled)
	}
	_ = fake.Match
}
