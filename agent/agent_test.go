package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// A desired change reaches the GPIO line and the PWM channel, the reported
// values are what the hardware has, and no delta is left.
func TestDesiredChangeReachesHardwareAndIsReported(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")

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
}

// Invalid desired values never touch the hardware; each is reported with
// its reason, on_reject is applied, and the agent keeps working.
func TestInvalidDesiredLeavesHardwareAlone(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")

	m := r.rec.mark()
	app.desire(t, `{"heater": true}`)
	r.rec.waitFor(t, m, "heater write", func(e Event) bool { return e.Kind == EventWrite && e.Key == "heater" })
	app.waitDoc(t, "heater applied", func(d *shadowsync.Document) bool { return d.Reported["heater"] == true })

	before := len(r.hal.Ops())
	m = r.rec.mark()
	// Wrong type (revert), interlock (clear_desired), out of range (keep),
	// unknown key.
	app.desire(t, `{"heater": "on", "cooler": true, "fan": 150, "heatr": 1}`)
	d := app.waitDoc(t, "every bad key rejected and on_reject applied", func(d *shadowsync.Document) bool {
		return status(d, "heater")["status"] == "rejected" && status(d, "cooler")["status"] == "rejected" &&
			status(d, "fan")["status"] == "rejected" && status(d, "heatr")["status"] == "rejected" &&
			d.Desired["heater"] == true && d.Desired["cooler"] == nil
	})
	// The heater's reject event must not carry the value applied before
	// (true): observers (the console's event list) would show "heater true
	// rejected" for a refused "on".
	rej := r.rec.waitFor(t, m, "heater reject event", func(e Event) bool { return e.Kind == EventReject && e.Key == "heater" })
	if rej.Value != nil || !strings.Contains(rej.Message, "on") {
		t.Errorf("heater reject event value %v message %q; want no value and a message naming the refused value", rej.Value, rej.Message)
	}
	for key, code := range map[string]float64{"heater": 400, "cooler": 409, "fan": 400, "heatr": 404} {
		if c, _ := num(status(d, key)["code"]); c != code {
			t.Errorf("_status.%s code %v, want %v (%v)", key, c, code, status(d, key))
		}
		if msg, _ := status(d, key)["message"].(string); msg == "" {
			t.Errorf("_status.%s has no message", key)
		}
	}
	if f, _ := num(d.Desired["fan"]); f != 150 {
		t.Errorf("fan (on_reject keep) desired = %v, want 150 left in place", d.Desired["fan"])
	}
	for _, op := range r.hal.Ops()[before:] {
		if op.Kind == fake.OpSet || op.Kind == fake.OpPWMSet {
			t.Errorf("hardware touched for an invalid desired value: %v", op)
		}
	}
	if high, _ := r.hal.Physical("pinctrl-bcm2711/17"); high {
		t.Error("heater switched off by a rejected value")
	}
	if high, _ := r.hal.Physical("pinctrl-bcm2711/23"); high {
		t.Error("cooler switched on despite the interlock")
	}
	// Still running: a corrected value is applied.
	m = r.rec.mark()
	app.desire(t, `{"fan": 30}`)
	r.rec.waitFor(t, m, "fan write", func(e Event) bool { return e.Kind == EventWrite && e.Key == "fan" })
	app.waitDoc(t, "fan 30 applied", func(d *shadowsync.Document) bool {
		f, _ := num(d.Reported["fan"])
		return f == 30 && status(d, "fan")["status"] == "applied"
	})
	st := r.ag.Status()
	var rejected []string
	for _, k := range st.Keys {
		if k.Status == "rejected" {
			rejected = append(rejected, k.Key)
		}
	}
	if len(rejected) < 2 {
		t.Errorf("status shows rejected keys %v, want heater and cooler (and heatr)", rejected)
	}
}

// A sensor change is reported within one tick; a change inside the deadband
// is not; the heartbeat re-sends the value.
func TestSensorDeadbandAndHeartbeat(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")

	reportedTemp := func(e Event) (float64, bool) {
		p, _ := e.Value.(map[string]any)
		v, ok := p["temperature"]
		if !ok || e.Kind != EventReported {
			return 0, false
		}
		f, _ := num(v)
		return f, true
	}
	tick := func() int {
		m := r.rec.mark()
		r.clock.Advance(time.Second)
		r.rec.waitFor(t, m, "sensor read", func(e Event) bool { return e.Kind == EventSensor && e.Key == "temperature" })
		r.rec.waitFor(t, m, "iteration", kind(EventIteration))
		return m
	}
	// The first reading goes out at once.
	m := tick()
	app.waitDoc(t, "temperature 20", func(d *shadowsync.Document) bool { f, _ := num(d.Reported["temperature"]); return f == 20 })

	r.bme.SetTemperature(20.3) // inside the 0.5 deadband
	m = tick()
	for _, e := range r.rec.since(m) {
		if v, ok := reportedTemp(e); ok {
			t.Errorf("a change inside the deadband was reported: %v", v)
		}
	}
	r.bme.SetTemperature(21)
	m = tick()
	e := r.rec.waitFor(t, m, "temperature report", func(e Event) bool { _, ok := reportedTemp(e); return ok })
	if v, _ := reportedTemp(e); v != 21 {
		t.Errorf("reported %v, want 21", v)
	}
	app.waitDoc(t, "temperature 21", func(d *shadowsync.Document) bool { f, _ := num(d.Reported["temperature"]); return f == 21 })

	// Unchanged for the heartbeat period (30 s): sent again once.
	r.bme.SetTemperature(21.1)
	m = r.rec.mark()
	for i := 0; i < 29; i++ {
		tick()
	}
	for _, e := range r.rec.since(m) {
		if _, ok := reportedTemp(e); ok {
			t.Fatalf("reported before the heartbeat was due:\n%s", r.rec.dump(m))
		}
	}
	m = r.rec.mark()
	tick()
	tick()
	r.rec.waitFor(t, m, "heartbeat report", func(e Event) bool { _, ok := reportedTemp(e); return ok })
}

const pwmBoard = `
thing: pb1
board: pi4b
state_dir: ${STATE}
connection: {endpoint: 127.0.0.1, port: 1, transport: tcp}
devices:
  - id: board
    driver: pca9685
    bus: 1
    address: 0x40
    frequency: 1000
    channels:
      - {channel: 15, name: strip, kind: pwm}
shadows:
  - desired:
      strip: {device: board, property: strip, unit: "%", boot: 0}
`

// A desired change reaches an I2C chip (PCA9685 registers written on the
// bus) and what the chip reads back is reported.
func TestDesiredChangeReachesI2CChip(t *testing.T) {
	r := newRig(t)
	chip := chips.NewPCA9685()
	r.hal.Bus("1").Attach(0x40, chip)
	r.start(pwmBoard)
	r.ready()
	app := r.newApp("pb1")
	ops := len(r.hal.Bus("1").Log().Ops())
	m := r.rec.mark()
	app.desire(t, `{"strip": 25}`)
	r.rec.waitFor(t, m, "strip write", func(e Event) bool { return e.Kind == EventWrite && e.Key == "strip" })
	var wrote bool
	for _, op := range r.hal.Bus("1").Log().Ops()[ops:] {
		if op.Addr == 0x40 && len(op.W) > 1 {
			wrote = true
		}
	}
	if !wrote {
		t.Error("no register write to the PCA9685 at 0x40 after desired strip 25")
	}
	app.waitDoc(t, "strip 25 reported, no delta", func(d *shadowsync.Document) bool {
		f, _ := num(d.Reported["strip"])
		return f == 25 && len(d.Delta) == 0 && status(d, "strip")["status"] == "applied"
	})
}

// throttle: a value that changes on every read is reported at most once per
// throttle period.
func TestSensorThrottle(t *testing.T) {
	r := newRig(t)
	yaml := strings.Replace(greenhouse, "      pressed: {device: button, update_interval: 1m}\n",
		"      pressed: {device: button, update_interval: 1m}\n      humidity: {device: climate, property: humidity, update_interval: 1s, filters: [{throttle: 5s}], round: 1}\n", 1)
	r.start(yaml)
	r.ready()
	m := r.rec.mark()
	var at []time.Time
	for i := 0; i < 12; i++ {
		r.bme.SetHumidity(40 + float64(i))
		mi := r.rec.mark()
		r.clock.Advance(time.Second)
		r.rec.waitFor(t, mi, "humidity read", func(e Event) bool { return e.Kind == EventSensor && e.Key == "humidity" })
		r.rec.waitFor(t, mi, "iteration", kind(EventIteration))
	}
	for _, e := range r.rec.since(m) {
		if p, ok := e.Value.(map[string]any); ok && e.Kind == EventReported {
			if _, has := p["humidity"]; has {
				at = append(at, e.Time)
			}
		}
	}
	if len(at) < 2 || len(at) > 3 {
		t.Fatalf("humidity reported %d times in 12 s of changes with throttle 5s, want 2–3: %v", len(at), at)
	}
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < 5*time.Second {
			t.Errorf("two humidity reports %s apart, throttle is 5s", d)
		}
	}
}
