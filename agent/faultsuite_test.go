//go:build faults

package agent

// The fault suite (issue 8): scenarios that break what the agent depends on
// — the broker, its own process, the link, the disk, the clock, the input —
// and assert what a user would notice. Run by scripts/faults.sh with the
// full counts and by scripts/test.sh with a few iterations each:
//
//	go test -tags faults -run '^TestFault' ./agent/ -faults.restarts=50 -faults.kills=50

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/shadowsync"
)

var (
	faultSeed     = flag.Uint64("faults.seed", 1, "seed of every random fault schedule")
	faultRestarts = flag.Int("faults.restarts", 5, "broker restarts in TestFaultBrokerRestarts")
	faultKills    = flag.Int("faults.kills", 5, "kill -9 of the agent process in TestFaultKill9")
	faultSilences = flag.Int("faults.silences", 1, "silent links in TestFaultSilentLink")
	faultKnown    = flag.Bool("faults.known", false, "also run the scenarios of known, unfixed gaps")
)

// faultConfig is one agent with a relay and a fan whose desired key spans
// 0…10000 (scale 0.01 → 0…100 %), so every desired update carries a unique,
// increasing number and a lost update is visible as a smaller one.
const faultConfig = `
thing: %s
board: pi4b
state_dir: ${STATE}
connection:
  endpoint: 127.0.0.1
  port: 1
  transport: tcp
  backoff: {base: 20ms, max: 200ms, stable: 1s, jitter: none}
  queue: {size: 100, drop: oldest, drain_rate: 1000/s}
devices:
  - {id: heater, driver: relay, pin: GPIO17}
  - {id: fan, driver: fan, channel: GPIO18}
shadows:
  - desired:
      heater: {device: heater, boot: false}
      fan: {device: fan, property: speed, range: [0, 10000], scale: 0.01, boot: 0}
`

// accepted is one desired update the cloud accepted.
type accepted struct {
	version int64
	seq     int
	sent    time.Time // when it was sent
	at      time.Time // when its accepted response arrived
}

// writer keeps changing desired (fan = seq, heater = seq odd) and logs
// every update the cloud accepted.
type writer struct {
	a    *app
	mu   sync.Mutex
	log  []accepted
	seq  int
	errs int
}

// write sends seq and retries until it is accepted or ctx ends.
func (w *writer) write(ctx context.Context, seq int) bool {
	for ctx.Err() == nil {
		sent := time.Now()
		uctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		acc, err := w.a.sh.Update(uctx, shadowsync.UpdateRequest{Desired: map[string]any{"fan": seq, "heater": seq%2 == 1}})
		cancel()
		if err == nil {
			w.mu.Lock()
			w.log = append(w.log, accepted{version: acc.Version, seq: seq, sent: sent, at: time.Now()})
			w.mu.Unlock()
			return true
		}
		w.mu.Lock()
		w.errs++
		w.mu.Unlock()
	}
	return false
}

// run writes 1, 2, 3, … until ctx ends.
func (w *writer) run(ctx context.Context, every time.Duration) {
	for ctx.Err() == nil {
		w.seq++
		if !w.write(ctx, w.seq) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(every): // the pace of a user's changes, not synchronisation
		}
	}
}

func (w *writer) last() accepted {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.log) == 0 {
		return accepted{}
	}
	return w.log[len(w.log)-1]
}

// fleetAgent is one in-process agent on its own fake HAL and state dir.
type fleetAgent struct {
	thing string
	hal   *fake.HAL
	rec   *recorder
	stop  context.CancelCauseFunc
	done  chan error
}

func startFleetAgent(t *testing.T, c *cloud, thing string) *fleetAgent {
	t.Helper()
	f := &fleetAgent{thing: thing, hal: fake.New(), rec: newRecorder(), done: make(chan error, 1)}
	cfg := parseConfig(t, fmt.Sprintf(faultConfig, thing), t.TempDir())
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ag, err := New(cfg, Deps{HAL: f.hal, Endpoint: "tcp://" + c.addr, Logger: log, Events: f.rec.add, StopTimeout: 3 * time.Second,
		Shadow: shadowsync.Options{Timeout: 2 * time.Second, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	f.stop = cancel
	go func() { f.done <- ag.Run(ctx) }()
	return f
}

func (f *fleetAgent) halt(t *testing.T) {
	f.stop(ErrHardStop)
	select {
	case <-f.done:
	case <-time.After(wait):
		t.Errorf("agent %s did not stop", f.thing)
	}
}

// docWithin gets the document, retrying while the cloud is coming back.
func (a *app) docWithin(t *testing.T, d time.Duration) *shadowsync.Document {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		doc, err := a.sh.Get(gctx)
		gcancel()
		if err == nil {
			return doc
		}
		if ctx.Err() != nil {
			t.Fatalf("get shadow within %v: %v", d, err)
		}
	}
}

// TestFaultBrokerRestarts restarts the local cloud (bbolt on disk) at
// seeded random moments while desired keeps changing. Asserts: after every
// restart the shadow still has every update accepted before it (version and
// value never go back); at the end every agent reports, and its hardware
// holds, the last accepted desired state.
func TestFaultBrokerRestarts(t *testing.T) {
	c := startCloud(t)
	rng := rand.New(rand.NewPCG(*faultSeed, 1))
	things := []string{"fault-a", "fault-b"}
	var agents []*fleetAgent
	writers := map[string]*writer{}
	for _, th := range things {
		agents = append(agents, startFleetAgent(t, c, th))
		a := newApp(t, c, th)
		writers[th] = &writer{a: a}
	}
	defer func() {
		c.stop() // first: see the mochi note on rig.teardown
		for _, w := range writers {
			w.a.close()
		}
		for _, f := range agents {
			f.halt(t)
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx, 30*time.Millisecond) }()
	}
	for i := 0; i < *faultRestarts; i++ {
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond) // a random moment: the fault schedule
		before := map[string]accepted{}
		for th, w := range writers {
			before[th] = w.last()
		}
		c.stop()
		time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // random downtime
		c.start()
		for th, w := range writers {
			d := w.a.docWithin(t, wait)
			fan, _ := num(d.Desired["fan"])
			if d.Version < before[th].version || int(fan) < before[th].seq {
				t.Fatalf("restart %d: %s has version %d desired fan %v; before the restart the cloud had accepted version %d (fan %d): an accepted update was lost",
					i+1, th, d.Version, fan, before[th].version, before[th].seq)
			}
		}
	}
	cancel()
	wg.Wait()
	for i, th := range things {
		w, f := writers[th], agents[i]
		// The writer may have been cancelled mid-update: settle on one more.
		w.seq++
		wctx, wcancel := context.WithTimeout(context.Background(), wait)
		if !w.write(wctx, w.seq) {
			t.Fatalf("%s: final update never accepted", th)
		}
		wcancel()
		last := w.last()
		d := w.a.waitDoc(t, fmt.Sprintf("%s reports fan %d", th, last.seq), func(d *shadowsync.Document) bool {
			fan, _ := num(d.Reported["fan"])
			return int(fan) == last.seq && d.Reported["heater"] == (last.seq%2 == 1) && len(d.Delta) == 0
		})
		if fan, _ := num(d.Desired["fan"]); int(fan) != last.seq {
			t.Errorf("%s: final desired fan %v, want the last accepted %d", th, fan, last.seq)
		}
		duty, _, on := f.hal.PWM(fanPWM)
		if want := float64(last.seq) / 10000; !on || math.Abs(duty-want) > 1e-9 {
			t.Errorf("%s: fan hardware duty %v (enabled %v), want %v", th, duty, on, want)
		}
		if high, _ := f.hal.Physical("pinctrl-bcm2711/17"); high != (last.seq%2 == 1) {
			t.Errorf("%s: heater wire %v, want %v", th, high, last.seq%2 == 1)
		}
		offline := 0
		for _, e := range f.rec.since(0) {
			if e.Kind == EventOffline {
				offline++
			}
		}
		if *faultRestarts > 0 && offline == 0 {
			t.Errorf("%s never saw the broker go away: the restarts did not happen", th)
		}
		t.Logf("%s: %d updates accepted, %d failed during restarts, agent offline %d times, final fan %d at version %d",
			th, len(w.log), w.errs, offline, last.seq, d.Version)
	}
}

// jsonValue renders v for messages.
func jsonValue(v any) string {
	b, _ := json.Marshal(v)
	return strings.TrimSpace(string(b))
}
