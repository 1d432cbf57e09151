package agent

import (
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/shadowsync"
)

const heaterLine, coolerLine, fanPWM = "pinctrl-bcm2711/17", "pinctrl-bcm2711/23", "pwmchip0/0"

// count counts ops of kind on name from index from.
func count(ops []fake.Op, from int, kind fake.OpKind, name string) int {
	n := 0
	for _, op := range ops[from:] {
		if op.Kind == kind && op.Name == name {
			n++
		}
	}
	return n
}

// Desired changes made while the agent is offline are applied once on
// reconnect, and reported.
func TestOfflineChangesAppliedOnceOnReconnect(t *testing.T) {
	r := newRig(t)
	r.link = newLink(t, r.cloud.addr)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	app.desire(t, `{"heater": true}`)
	app.waitDoc(t, "heater on", func(d *shadowsync.Document) bool { return d.Reported["heater"] == true })

	m := r.rec.mark()
	r.link.cut()
	r.rec.waitFor(t, m, "offline", kind(EventOffline))
	app.desire(t, `{"heater": false, "fan": 40}`)
	app.desire(t, `{"fan": 45}`)
	ops := len(r.hal.Ops())
	m = r.rec.mark()
	r.link.restore()
	r.rec.waitFor(t, m, "online", kind(EventOnline))
	app.waitDoc(t, "offline changes applied and reported", func(d *shadowsync.Document) bool {
		f, _ := num(d.Reported["fan"])
		return d.Reported["heater"] == false && f == 45 && len(d.Delta) == 0
	})
	all := r.hal.Ops()
	if n := count(all, ops, fake.OpSet, heaterLine); n != 1 {
		t.Errorf("heater set %d times after reconnect, want once", n)
	}
	if n := count(all, ops, fake.OpPWMSet, fanPWM); n != 1 {
		t.Errorf("fan PWM set %d times after reconnect, want once (to 45, not 40 first)", n)
	}
}

// Offline longer than failsafe_after: the heater goes to its failsafe value;
// on reconnect the desired value is applied again and the episode reported.
func TestFailsafeAfterOfflineAndRecovery(t *testing.T) {
	r := newRig(t)
	r.link = newLink(t, r.cloud.addr)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	app.desire(t, `{"heater": true}`)
	app.waitDoc(t, "heater on", func(d *shadowsync.Document) bool { return d.Reported["heater"] == true })

	m := r.rec.mark()
	r.link.cut()
	r.rec.waitFor(t, m, "offline", kind(EventOffline))
	r.clock.Advance(30 * time.Second)
	r.rec.waitFor(t, m, "iteration", kind(EventIteration))
	if high, _ := r.hal.Physical(heaterLine); high {
		t.Fatal("heater went off before failsafe_after (1m)")
	}
	r.clock.Advance(31 * time.Second)
	r.rec.waitFor(t, m, "failsafe", kind(EventFailsafe))
	if high, _ := r.hal.Physical(heaterLine); !high {
		t.Fatal("heater still on after 61s offline; want the failsafe off (line high, active low)")
	}
	if st := r.ag.Status(); st.Connection.State == "online" {
		t.Errorf("status says online while the link is cut")
	}
	m = r.rec.mark()
	r.link.restore()
	r.rec.waitFor(t, m, "online", kind(EventOnline))
	d := app.waitDoc(t, "heater back on after the failsafe", func(d *shadowsync.Document) bool {
		return d.Reported["heater"] == true && status(d, "heater")["failsafe_at"] != nil
	})
	if high, _ := r.hal.Physical(heaterLine); high {
		t.Error("heater not switched on again after reconnect")
	}
	_ = d
}
