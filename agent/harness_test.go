package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/localcloud"
	"github.com/pinshadow/pinshadow/shadowsync"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait in these tests; nothing sleeps.
const wait = 10 * time.Second

// greenhouse is the configuration most tests run: two interlocked relays, a
// PWM fan, a BME280 and a button.
const greenhouse = `
thing: gh1
board: pi4b
state_dir: ${STATE}
connection:
  endpoint: 127.0.0.1
  port: 1
  transport: tcp
  backoff: {base: 20ms, max: 200ms, stable: 1s, jitter: none}
  queue: {size: 100, drop: oldest, drain_rate: 1000/s}
devices:
  - {id: heater, driver: relay, pin: GPIO17, active_low: true}
  - {id: cooler, driver: relay, pin: GPIO23}
  - {id: fan, driver: fan, channel: GPIO18, min_duty: 20}
  - {id: climate, driver: bme280, bus: 1, address: 0x76}
  - {id: button, driver: button, pin: GPIO27, debounce: 10ms}
shadows:
  - desired:
      heater: {device: heater, boot: false, interlock: climate, on_reject: revert, failsafe: {value: false, after: 1m}}
      cooler: {device: cooler, boot: false, interlock: climate, on_reject: clear_desired}
      fan: {device: fan, property: speed, unit: "%", range: [0, 100], boot: 0}
    reported:
      temperature:
        device: climate
        property: temperature
        update_interval: 1s
        filters: [{delta: 0.5}, {heartbeat: 30s}]
        round: 1
      pressed: {device: button, update_interval: 1m}
`

// parseConfig parses yaml with ${STATE} set to dir.
func parseConfig(t *testing.T, yaml, dir string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", config.Options{
		ReadFile: func(name string) ([]byte, error) {
			if name == "test.yaml" {
				return []byte(yaml), nil
			}
			return nil, os.ErrNotExist
		},
		LookupEnv: func(name string) (string, bool) {
			if name == "STATE" {
				return dir, true
			}
			return "", false
		},
	})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// cloud is a local cloud on a fixed data dir and port (so it can be
// stopped and started again).
type cloud struct {
	t    *testing.T
	dir  string
	addr string
	srv  *localcloud.Server
	// opts, when set, adjusts the options at every start.
	opts func(*localcloud.Options)
}

func startCloud(t *testing.T) *cloud {
	c := &cloud{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	c.start()
	t.Cleanup(c.stop)
	return c
}

func (c *cloud) start() {
	c.t.Helper()
	o := localcloud.DefaultOptions()
	o.Listen, o.DataDir = c.addr, c.dir
	o.RatePerThing, o.MaxInFlight = 0, 0
	if c.opts != nil {
		c.opts(&o)
	}
	s, err := localcloud.New(o)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		s.Close()
		c.t.Fatal(err)
	}
	c.srv = s
	c.addr = s.Endpoints()[0].Addr.String()
}

func (c *cloud) stop() {
	if c.srv != nil {
		c.srv.Close()
		c.srv = nil
	}
}

// app is the cloud side: a shadowsync client of its own, as a phone app or
// backend would use.
type app struct {
	ic *iot.Client
	sc *shadowsync.Client
	sh *shadowsync.Shadow
}

func newApp(t *testing.T, c *cloud, thing string) *app {
	t.Helper()
	ic, err := iot.New(iot.Config{Endpoint: c.addr, Transport: iot.TransportTCP, ClientID: "app-" + thing,
		Backoff: iot.BackoffConfig{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: iot.JitterNone},
		Queue:   iot.QueueConfig{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ic.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sc, err := shadowsync.NewIOT(ic, shadowsync.Options{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := sc.Open(ctx, shadowsync.Key{Thing: thing}, shadowsync.ShadowOptions{NoAutoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return &app{ic: ic, sc: sc, sh: sh}
}

func (a *app) close() {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	a.sc.Close(ctx)
	a.ic.Close(ctx)
}

// newApp connects a cloud-side client for thing; the rig closes it.
func (r *rig) newApp(thing string) *app {
	a := newApp(r.t, r.cloud, thing)
	r.closers = append(r.closers, a.close)
	return a
}

// desire updates desired from a JSON object.
func (a *app) desire(t *testing.T, js string) int64 {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		acc, err := a.sh.Update(ctx, shadowsync.UpdateRequest{Desired: m})
		if err == nil {
			return acc.Version
		}
		if ctx.Err() != nil {
			t.Fatalf("update desired %s: %v", js, err)
		}
	}
}

// doc gets the shadow document.
func (a *app) doc(t *testing.T) *shadowsync.Document {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	d, err := a.sh.Get(ctx)
	if errors.Is(err, shadowsync.ErrNotFound) {
		return &shadowsync.Document{Raw: []byte("(no shadow yet)")}
	}
	if err != nil {
		t.Fatalf("get shadow: %v", err)
	}
	return d
}

// waitDoc gets the document until ok holds.
func (a *app) waitDoc(t *testing.T, what string, ok func(d *shadowsync.Document) bool) *shadowsync.Document {
	t.Helper()
	deadline := time.Now().Add(wait)
	var d *shadowsync.Document
	for time.Now().Before(deadline) {
		d = a.doc(t)
		if ok(d) {
			return d
		}
		// Wait for a version newer than the one just read instead of sleeping.
		a.nextUpdate(d.Version, deadline)
	}
	t.Fatalf("shadow never reached %s; last document: %s", what, d.Raw)
	return nil
}

// nextUpdate returns once the shadow's version is past v (seen through the
// mirror, which follows update/accepted broadcasts) or at the deadline.
func (a *app) nextUpdate(v int64, deadline time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond) // polling the in-memory mirror, not synchronising on time
	defer tick.Stop()
	for a.sh.Mirror().Version <= v {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// recorder collects the agent's events; tests wait on them.
type recorder struct {
	mu     sync.Mutex
	events []Event
	ch     chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{})} }

func (r *recorder) add(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	close(r.ch)
	r.ch = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) since(i int) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events[i:]...)
}

// waitFor returns the first event from index from on that matches, failing
// the test after the deadline.
func (r *recorder) waitFor(t *testing.T, from int, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	i := from
	for {
		r.mu.Lock()
		for ; i < len(r.events); i++ {
			if match(r.events[i]) {
				e := r.events[i]
				r.mu.Unlock()
				return e
			}
		}
		ch := r.ch
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no event %s within %s; events:\n%s", what, wait, r.dump(from))
		}
	}
}

func (r *recorder) dump(from int) string {
	var b strings.Builder
	for _, e := range r.since(from) {
		fmt.Fprintf(&b, "  %s %s key=%s dev=%s.%s value=%v status=%s msg=%s\n", e.Time.Format("15:04:05.000"), e.Kind, e.Key, e.Device, e.Property, e.Value, e.Status, e.Message)
	}
	return b.String()
}

func kind(k EventKind) func(Event) bool { return func(e Event) bool { return e.Kind == k } }

// rig is one agent on a fake HAL against a local cloud.
type rig struct {
	t     *testing.T
	cloud *cloud
	hal   *fake.HAL
	bme   *chips.BME280
	clock *fake.FakeClock
	dir   string
	link  *link // nil: the agent connects to the cloud directly
	// closers run at teardown, after the cloud has stopped (apps,
	// subscribers).
	closers []func()
	rec     *recorder
	ag      *Agent
	stop    context.CancelCauseFunc
	done    chan error
}

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// newRig builds the hardware and the cloud; start runs an agent.
func newRig(t *testing.T) *rig {
	clk := fake.NewFakeClock(t0)
	h := fake.New(fake.WithClock(clk), fake.WithSeed(1))
	bme := chips.NewBME280(chips.DatasheetCalibration())
	bme.SetTemperature(20)
	bme.SetHumidity(50)
	bme.SetPressure(101325)
	h.Bus("1").Attach(0x76, bme)
	r := &rig{t: t, cloud: startCloud(t), hal: h, bme: bme, clock: clk, dir: t.TempDir()}
	t.Cleanup(r.teardown)
	return r
}

// teardown stops the cloud first, while every client is steadily
// connected, then the clients and the agent. (mochi v2.7.9 can deadlock in
// Server.Close when a client detaches at that moment: Clients.GetByListener
// takes a read lock twice, and the detach's write lock waits between them.)
func (r *rig) teardown() {
	if r.t.Failed() && os.Getenv("AGENT_TEST_STACKS") != "" {
		buf := make([]byte, 1<<20)
		os.WriteFile(os.Getenv("AGENT_TEST_STACKS"), buf[:runtime.Stack(buf, true)], 0o644)
	}
	if r.t.Failed() && r.stop != nil {
		b, _ := json.MarshalIndent(r.ag.Status(), "", " ")
		r.t.Logf("agent status at failure:\n%s", b)
	}
	r.cloud.stop()
	for _, c := range r.closers {
		c()
	}
	if r.link != nil {
		r.link.close()
	}
	r.halt(ErrHardStop)
	if r.t.Failed() && r.rec != nil {
		r.t.Logf("agent events:\n%s", r.rec.dump(0))
	}
}

func (r *rig) start(yaml string) *Agent {
	r.t.Helper()
	cfg := parseConfig(r.t, yaml, r.dir)
	r.rec = newRecorder()
	log := slog.New(slog.NewTextHandler(testWriter{r.t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ep := r.cloud.addr
	if r.link != nil {
		ep = r.link.addr()
	}
	ag, err := New(cfg, Deps{HAL: r.hal, Endpoint: "tcp://" + ep, Logger: log, Events: r.rec.add,
		Clock: HALClock(r.clock), StopTimeout: 3 * time.Second,
		Shadow: shadowsync.Options{Timeout: 2 * time.Second, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	r.ag, r.stop, r.done = ag, cancel, make(chan error, 1)
	go func() { r.done <- ag.Run(ctx) }()
	return ag
}

// halt stops the agent (cause ErrHardStop: as if killed) and waits for Run.
func (r *rig) halt(cause error) error {
	if r.stop == nil {
		return nil
	}
	if cause == nil {
		cause = context.Canceled
	}
	r.stop(cause)
	r.stop = nil
	select {
	case err := <-r.done:
		return err
	case <-time.After(wait):
		r.t.Fatal("Run did not return after its context was cancelled")
	}
	return nil
}

func (r *rig) ready() {
	r.t.Helper()
	select {
	case <-r.ag.Ready():
	case <-time.After(wait):
		r.t.Fatalf("agent never converged; events:\n%s", r.rec.dump(0))
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// num reads a JSON number from a decoded document.
func num(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	}
	return 0, false
}

// status returns reported._status.<key> from a document.
func status(d *shadowsync.Document, key string) map[string]any {
	st, _ := d.Reported["_status"].(map[string]any)
	m, _ := st[key].(map[string]any)
	return m
}

// link is a TCP proxy between the agent and the cloud that a test can cut
// (as a dead Wi-Fi would) and restore, on the same address.
type link struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

// newLink starts a link to target; the rig closes it at teardown.
func newLink(t *testing.T, target string) *link {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]bool{}}
	l.wg.Add(1)
	go l.accept()
	return l
}

func (l *link) addr() string { return l.ln.Addr().String() }

func (l *link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		blocked := l.blocked
		l.mu.Unlock()
		if blocked {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns[c], l.conns[up] = true, true
		l.mu.Unlock()
		l.wg.Add(2)
		go l.pipe(c, up)
		go l.pipe(up, c)
	}
}

func (l *link) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cut drops every connection and refuses new ones.
func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blocked = true
	for c := range l.conns {
		c.Close()
	}
	l.conns = map[net.Conn]bool{}
}

func (l *link) restore() {
	l.mu.Lock()
	l.blocked = false
	l.mu.Unlock()
}

func (l *link) close() {
	l.ln.Close()
	l.cut()
	l.wg.Wait()
}
