package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// After a crash (no final report) and a restart on the same hardware and
// state directory, hardware and shadow converge with no toggle beyond what
// desired requires.
func TestCrashAndRestartCostsNoToggles(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	app.desire(t, `{"heater": true, "fan": 60}`)
	app.waitDoc(t, "applied", func(d *shadowsync.Document) bool {
		f, _ := num(d.Reported["fan"])
		return d.Reported["heater"] == true && f == 60 && len(d.Delta) == 0
	})
	heater := len(r.hal.PhysicalHistory(heaterLine))
	cooler := len(r.hal.PhysicalHistory(coolerLine))
	if err := r.halt(ErrHardStop); err != nil {
		t.Fatalf("Run after a hard stop: %v", err)
	}

	r.start(greenhouse)
	r.ready()
	app.waitDoc(t, "converged after restart", func(d *shadowsync.Document) bool {
		return d.Reported["heater"] == true && len(d.Delta) == 0
	})
	if h := r.hal.PhysicalHistory(heaterLine); len(h) != heater {
		t.Errorf("heater wire history after restart %v (had %d entries before): the restart toggled it", h, heater)
	}
	if h := r.hal.PhysicalHistory(coolerLine); len(h) != cooler {
		t.Errorf("cooler wire history after restart %v (had %d entries)", h, cooler)
	}
	if duty, _, on := r.hal.PWM(fanPWM); !on || duty < 0.59 || duty > 0.61 {
		t.Errorf("fan after restart: duty %v enabled %v, want 0.6", duty, on)
	}
}

// A corrupt state file is a warning, not a crash: the agent starts from
// boot values and replaces the file.
func TestCorruptStateFileStartsFromBoot(t *testing.T) {
	r := newRig(t)
	path := filepath.Join(r.dir, StateFile)
	if err := os.WriteFile(path, []byte(`{"format":1,"state":{"keys":`), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start(greenhouse)
	r.rec.waitFor(t, 0, "state error", func(e Event) bool {
		return e.Kind == EventStateError && strings.Contains(e.Message, "corrupt")
	})
	r.ready()
	app := r.newApp("gh1")
	app.desire(t, `{"heater": true}`)
	app.waitDoc(t, "heater on", func(d *shadowsync.Document) bool { return d.Reported["heater"] == true })
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"applied": true`) {
		t.Errorf("state file not replaced with a good one: %v\n%s", err, b)
	}
}

// A state directory that cannot be written: a clear error, and the agent keeps running
// from memory.
func TestUnwritableStateDirKeepsRunning(t *testing.T) {
	r := newRig(t)
	// A state_dir that cannot be created (its parent is a file) fails like a
	// read-only or full disk would, also for root.
	blocker := filepath.Join(r.dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r.dir = filepath.Join(blocker, "state")
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	app.desire(t, `{"heater": true}`)
	app.waitDoc(t, "heater on", func(d *shadowsync.Document) bool { return d.Reported["heater"] == true })
	if st := r.ag.Status(); st.StateError == "" {
		t.Error("status does not show the state file error")
	}
}

// A normal stop sends the final report before disconnecting: once Run has
// returned, the last reading is in the shadow.
func TestStopSendsFinalReport(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	r.bme.SetTemperature(24)
	m := r.rec.mark()
	r.clock.Advance(time.Second)
	r.rec.waitFor(t, m, "temperature report queued", func(e Event) bool {
		p, _ := e.Value.(map[string]any)
		_, has := p["temperature"]
		return e.Kind == EventReported && has
	})
	if err := r.halt(context.Canceled); err != nil {
		t.Fatalf("Run: %v", err)
	}
	d := app.doc(t)
	if f, _ := num(d.Reported["temperature"]); f != 24 {
		t.Errorf("after a normal stop the shadow has temperature %v, want the last reading 24", d.Reported["temperature"])
	}
	if st := r.ag.Status(); st.Running || st.Connection.State != "closed" {
		t.Errorf("status after stop: running %v, connection %q", st.Running, st.Connection.State)
	}
}

// Desired changed while the agent was down and the hardware was reset (a
// reboot): the output is opened straight at the new desired level — no
// restore of the old value first, no toggle at all.
func TestRestartAfterDesiredChangedWhileDown(t *testing.T) {
	r := newRig(t)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	app.desire(t, `{"heater": true}`)
	app.waitDoc(t, "heater on", func(d *shadowsync.Document) bool { return d.Reported["heater"] == true && len(d.Delta) == 0 })
	if err := r.halt(ErrHardStop); err != nil {
		t.Fatal(err)
	}
	app.desire(t, `{"heater": false}`)

	// A reboot: fresh hardware, same state directory.
	r.hal = fake.New(fake.WithClock(r.clock))
	r.hal.Bus("1").Attach(0x76, r.bme)
	r.start(greenhouse)
	r.ready()
	app.waitDoc(t, "heater off reported", func(d *shadowsync.Document) bool { return d.Reported["heater"] == false && len(d.Delta) == 0 })
	if h := r.hal.PhysicalHistory(heaterLine); len(h) != 1 || !h[0] {
		t.Errorf("heater wire history after the restart %v, want only [true] (off, active low): opened at the desired level", h)
	}
}

// A state file whose last output change lies in the future (the clock went
// back while the agent was down: a Pi without an RTC booting at an old
// time) does not hold the output for that long: min_toggle_interval counts
// from the start instead.
func TestStateFromTheFutureDoesNotStallMinToggle(t *testing.T) {
	r := newRig(t)
	future := t0.Add(24 * time.Hour).Format(time.RFC3339)
	st := `{"format":1,"thing":"gh1","state":{"outputs":{"cooler/on":{"last_change":"` + future + `"}}}}`
	if err := os.WriteFile(filepath.Join(r.dir, StateFile), []byte(st), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start(strings.Replace(greenhouse, "on_reject: clear_desired}", "on_reject: clear_desired, min_toggle_interval: 30s}", 1))
	r.ready()
	app := r.newApp("gh1")
	m := r.rec.mark()
	app.desire(t, `{"cooler": true}`)
	r.rec.waitFor(t, m, "cooler pending", func(e Event) bool { return e.Kind == EventResult && e.Key == "cooler" && e.Status == "pending" })
	for i := 0; i < 31; i++ {
		if high, _ := r.hal.Physical(coolerLine); high {
			break
		}
		m := r.rec.mark()
		r.clock.Advance(time.Second)
		r.rec.waitFor(t, m, "iteration", kind(EventIteration))
	}
	if high, _ := r.hal.Physical(coolerLine); !high {
		t.Fatalf("cooler still off 31 s after start with min_toggle_interval 30s: the future last change held it\n%s", r.rec.dump(0))
	}
}
