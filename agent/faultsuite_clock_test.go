//go:build faults

package agent

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// shiftWall moves t's wall clock reading by d (whole seconds) and keeps its
// monotonic reading: what time.Now returns after the system clock was
// stepped (NTP, an RTC-less Pi setting its clock at boot). The time package
// offers no way to build such a value, so this writes the wall field of
// Go's time.Time layout (wall: hasMonotonic bit, 33 bits of seconds since
// 1885, 30 bits of nanoseconds; ext: monotonic). checkShiftWall verifies
// the layout before a test relies on it.
func shiftWall(t time.Time, d time.Duration) time.Time {
	type layout struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	const hasMonotonic = 1 << 63
	p := (*layout)(unsafe.Pointer(&t))
	if p.wall&hasMonotonic == 0 {
		return t.Add(d)
	}
	secs := int64(p.wall<<1>>31) + int64(d/time.Second)
	p.wall = hasMonotonic | uint64(secs)<<30 | p.wall&(1<<30-1)
	return t
}

func checkShiftWall(t *testing.T) {
	now := time.Now()
	s := shiftWall(now, -time.Hour)
	if now.Unix()-s.Unix() != 3600 || s.Sub(now) != 0 || now.Sub(s) != 0 {
		t.Fatalf("shiftWall no longer matches Go's time.Time layout (wall %v → %v, monotonic difference %v): fix it for this Go version", now, s, s.Sub(now))
	}
}

// steppedClock is real time whose wall reading can be stepped.
type steppedClock struct{ offset atomic.Int64 }

func (c *steppedClock) Now() time.Time { return shiftWall(time.Now(), time.Duration(c.offset.Load())) }
func (c *steppedClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	tm := time.NewTimer(d)
	return tm.C, tm.Stop
}
func (c *steppedClock) step(d time.Duration) { c.offset.Add(int64(d)) }

// TestFaultClockJumps steps the wall clock an hour forwards, then two
// hours back, then a day forwards, while the agent runs on real time.
// Asserts after each step: the 1 s sensor keeps being read about once a
// second (no stall, no burst of catch-up reads), no storm of reports,
// desired changes are still applied, and the loop's liveness (the systemd
// watchdog's signal) still turns false when the loop is stuck.
func TestFaultClockJumps(t *testing.T) {
	t.Parallel() // runs on real time
	checkShiftWall(t)
	c := startCloud(t)
	h := fake.New()
	bme := chips.NewBME280(chips.DatasheetCalibration())
	bme.SetTemperature(20)
	bme.SetHumidity(50)
	bme.SetPressure(101325)
	h.Bus("1").Attach(0x76, bme)
	clk := &steppedClock{}
	rec := newRecorder()
	cfg := parseConfig(t, greenhouse, t.TempDir())
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ag, err := New(cfg, Deps{HAL: h, Endpoint: "tcp://" + c.addr, Logger: log, Events: rec.add, Clock: clk, StopTimeout: 3 * time.Second,
		Shadow: shadowsync.Options{Timeout: 2 * time.Second, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	a := newApp(t, c, "gh1")
	defer func() {
		c.stop()
		a.close()
		cancel(ErrHardStop)
		<-done
	}()
	select {
	case <-ag.Ready():
	case <-time.After(wait):
		t.Fatalf("agent never converged:\n%s", rec.dump(0))
	}

	// observe counts reads and reports over a window of real time.
	observe := func(what string, window time.Duration) {
		t.Helper()
		m := rec.mark()
		end := time.After(window)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		temp := 20.0
	loop:
		for {
			select {
			case <-end:
				break loop
			case <-tick.C: // a moving temperature so every read is news
				temp += 0.07
				bme.SetTemperature(temp)
			}
		}
		reads, reports := 0, 0
		for _, e := range rec.since(m) {
			switch {
			case e.Kind == EventSensor && e.Key == "temperature":
				reads++
			case e.Kind == EventReported:
				reports++
			}
		}
		secs := int(window / time.Second)
		if reads < secs/2 { // a stall reads nothing for the jump's length
			t.Errorf("%s: %d temperature reads in %v, want about %d: the 1 s timer stalled", what, reads, window, secs)
		}
		if reads > secs+3 || reports > secs+4 { // catch-up would read thousands
			t.Errorf("%s: %d reads and %d reports in %v, want about %d: a storm", what, reads, reports, window, secs)
		}
		t.Logf("%s: %d reads, %d reports in %v", what, reads, reports, window)
	}
	fan := 10
	apply := func(what string) {
		t.Helper()
		fan += 10
		a.desire(t, `{"fan": `+itoa(fan)+`}`)
		a.waitDoc(t, what+": fan applied", func(d *shadowsync.Document) bool { f, _ := num(d.Reported["fan"]); return int(f) == fan })
	}

	observe("before any step", 5*time.Second)
	for _, s := range []struct {
		name string
		d    time.Duration
	}{{"1 h forwards", time.Hour}, {"2 h backwards", -2 * time.Hour}, {"1 day forwards", 24 * time.Hour}} {
		clk.step(s.d)
		observe("after "+s.name, 5*time.Second)
		apply("after " + s.name)
	}

	// Liveness after a backward step: stick the loop in a slow write; the
	// watchdog's signal must go false within its max age, not an hour late.
	clk.step(-time.Hour)
	if !ag.Alive(2 * time.Second) {
		t.Fatal("agent not alive after the backward step")
	}
	h.SetLatency(fanPWM, 6*time.Second)
	a.desire(t, `{"fan": 99}`)
	stuck := time.Now()
	for ag.Alive(2 * time.Second) {
		if time.Since(stuck) > 5*time.Second {
			t.Fatal("the loop is stuck in a 6 s write, yet Alive(2s) is still true 5 s later: liveness follows the stepped wall clock, not monotonic time")
		}
		time.Sleep(50 * time.Millisecond) // polling a flag the agent exposes, not synchronising
	}
	t.Logf("stuck loop noticed after %v", time.Since(stuck).Round(time.Millisecond))
}
