package agent

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// 20 % of I2C transactions NACKed: the sensor reports null with a fault
// status (never a wrong value), the outputs keep working, and it recovers
// when the faults stop.
func TestI2CNACKsPutSensorInErrorAndRecover(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	tick := func(d time.Duration) {
		m := r.rec.mark()
		r.clock.Advance(d)
		r.rec.waitFor(t, m, "iteration", kind(EventIteration))
	}
	tick(time.Second)
	app.waitDoc(t, "temperature 20", func(d *shadowsync.Document) bool { f, _ := num(d.Reported["temperature"]); return f == 20 })

	r.hal.Bus("1").InjectFault(fake.I2CFault{Kind: fake.FaultNACK, Rate: 0.2})
	m := r.rec.mark()
	for i := 0; i < 40; i++ {
		tick(time.Second)
		if len(r.sensorErrors(m)) > 0 && i > 10 {
			break
		}
	}
	if len(r.sensorErrors(m)) == 0 {
		t.Fatalf("no sensor error in 40 reads with 20%% NACKs:\n%s", r.rec.dump(m))
	}
	d := app.waitDoc(t, "temperature null with a fault status", func(d *shadowsync.Document) bool {
		_, has := d.Reported["temperature"]
		return !has && status(d, "temperature")["status"] == "fault"
	})
	if msg, _ := status(d, "temperature")["message"].(string); !strings.Contains(strings.ToLower(msg), "nack") {
		t.Errorf("fault message %q does not name the NACK", msg)
	}
	// Outputs still work while the bus misbehaves (they are on GPIO).
	m = r.rec.mark()
	app.desire(t, `{"heater": true}`)
	r.rec.waitFor(t, m, "heater write", func(e Event) bool { return e.Kind == EventWrite && e.Key == "heater" })

	// A failing sensor does not hold the others back: the button reports.
	m = r.rec.mark()
	if err := r.hal.SetInput("pinctrl-bcm2711/27", false); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(20 * time.Millisecond)
	r.rec.waitFor(t, m, "button reading during the faults", func(e Event) bool {
		return e.Kind == EventSensor && e.Key == "pressed" && e.Value == true
	})
	app.waitDoc(t, "pressed reported while the bus fails", func(d *shadowsync.Document) bool { return d.Reported["pressed"] == true })

	r.hal.Bus("1").ClearFaults()
	r.bme.SetTemperature(22)
	for i := 0; i < 12; i++ { // backoff grows to at most a few seconds here
		tick(5 * time.Second)
	}
	app.waitDoc(t, "temperature recovered, fault status removed", func(d *shadowsync.Document) bool {
		f, _ := num(d.Reported["temperature"])
		return f == 22 && status(d, "temperature") == nil
	})
	if !r.ag.Status().Running {
		t.Error("agent not running after the faults")
	}
}

func (r *rig) sensorErrors(from int) []Event {
	var out []Event
	for _, e := range r.rec.since(from) {
		if e.Kind == EventSensorError {
			out = append(out, e)
		}
	}
	return out
}

// A button press is reported from its watcher, between read ticks.
func TestButtonPressReportedFromWatcher(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	m := r.rec.mark()
	// Pull-up, active low: pressing pulls the line low.
	if err := r.hal.SetInput("pinctrl-bcm2711/27", false); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(20 * time.Millisecond) // past the 10 ms debounce
	r.rec.waitFor(t, m, "button reading", func(e Event) bool {
		return e.Kind == EventSensor && e.Key == "pressed" && e.Value == true
	})
	app.waitDoc(t, "pressed reported", func(d *shadowsync.Document) bool { return d.Reported["pressed"] == true })
}

// Reload: a compatible configuration (a new range) takes effect; one that
// changes the devices is refused and the old one stays.
func TestReloadAcceptsCompatibleRefusesUnsafe(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")

	bad := strings.Replace(greenhouse, "pin: GPIO23", "pin: GPIO24", 1)
	err := r.ag.Reload(parseConfig(t, bad, r.dir))
	if err == nil || !strings.Contains(err.Error(), "devices") {
		t.Fatalf("reload moving a relay to another pin: err = %v, want refused (devices changed)", err)
	}
	narrower := strings.Replace(greenhouse, "range: [0, 100]", "range: [0, 80]", 1)
	m := r.rec.mark()
	if err := r.ag.Reload(parseConfig(t, narrower, r.dir)); err != nil {
		t.Fatalf("compatible reload refused: %v", err)
	}
	r.rec.waitFor(t, m, "reload", kind(EventReload))
	app.desire(t, `{"fan": 90}`)
	d := app.waitDoc(t, "fan 90 rejected by the new range", func(d *shadowsync.Document) bool {
		return status(d, "fan")["status"] == "rejected"
	})
	if msg, _ := status(d, "fan")["message"].(string); !strings.Contains(msg, "80") {
		t.Errorf("rejection %q does not name the new range", msg)
	}
}

// A device that cannot be opened at start (a GPIO chip not yet readable)
// reports faults, the rest runs, and it is opened and driven once it
// appears.
func TestDeviceOpenedWhenItAppears(t *testing.T) {
	r := newRig(t)
	r.hal.SetError(coolerLine, errors.New("permission denied"))
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	app.desire(t, `{"cooler": true}`)
	app.waitDoc(t, "cooler fault", func(d *shadowsync.Document) bool { return status(d, "cooler")["status"] == "fault" })
	r.hal.SetError(coolerLine, nil)
	m := r.rec.mark()
	for i := 0; i < 10; i++ {
		r.clock.Advance(5 * time.Second)
		r.rec.waitFor(t, m, "iteration", kind(EventIteration))
		if high, _ := r.hal.Physical(coolerLine); high {
			break
		}
	}
	app.waitDoc(t, "cooler applied once the line can be opened", func(d *shadowsync.Document) bool {
		return d.Reported["cooler"] == true && status(d, "cooler")["status"] == "applied"
	})
}
