package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/localcloud"
	"github.com/pinshadow/pinshadow/shadowsync"
)

const runWait = 10 * time.Second

// daemonLog collects the daemon's stderr; tests wait for text in it.
type daemonLog struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newDaemonLog() *daemonLog { return &daemonLog{changed: make(chan struct{})} }

func (l *daemonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *daemonLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *daemonLog) waitFor(t *testing.T, text string) {
	t.Helper()
	deadline := time.NewTimer(runWait)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ok := strings.Contains(l.b.String(), text)
		ch := l.changed
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("the log never said %q:\n%s", text, l.String())
		}
	}
}

const daemonConfig = `thing: d1
board: pi4b
state_dir: %s
connection:
  endpoint: 127.0.0.1
  port: %s
  transport: tcp
  backoff: {base: 20ms, max: 200ms, jitter: none}
devices:
  - {id: heater, driver: relay, pin: GPIO17}
  - {id: climate, driver: bme280, bus: 1, address: 0x76}
shadows:
  - desired:
      heater: {device: heater, boot: false}
    reported:
      temperature: {device: climate, property: temperature, update_interval: 1s, round: 1}
`

// notifySocket is a unixgram socket standing in for systemd's.
type notifySocket struct {
	c    *net.UnixConn
	path string
}

func newNotifySocket(t *testing.T) *notifySocket {
	path := filepath.Join(t.TempDir(), "n.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifySocket{c: c, path: path}
}

// next returns the next datagram (failing after runWait).
func (n *notifySocket) next(t *testing.T) string {
	t.Helper()
	_ = n.c.SetReadDeadline(time.Now().Add(runWait))
	b := make([]byte, 512)
	k, err := n.c.Read(b)
	if err != nil {
		t.Fatalf("no sd_notify datagram: %v", err)
	}
	return string(b[:k])
}

// expect reads datagrams until one starts with want.
func (n *notifySocket) expect(t *testing.T, want string) {
	t.Helper()
	for {
		if got := n.next(t); strings.HasPrefix(got, want) {
			return
		}
	}
}

// pending returns the datagrams already queued, without waiting.
func (n *notifySocket) pending() []string {
	var out []string
	b := make([]byte, 512)
	for {
		_ = n.c.SetReadDeadline(time.Now())
		k, err := n.c.Read(b)
		if err != nil {
			return out
		}
		out = append(out, string(b[:k]))
	}
}

// The daemon end to end in process: READY after convergence, WATCHDOG only
// while the loop is alive, the status endpoint and `agent status`, SIGHUP
// with a broken file keeps the old configuration, STOPPING on shutdown.
func TestRunDaemon(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first: runs after every other cleanup
	o := localcloud.DefaultOptions()
	o.Listen, o.RatePerThing, o.MaxInFlight = "127.0.0.1:0", 0, 0
	cloud, err := localcloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runWait)
	defer cancel()
	if err := cloud.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	_, port, _ := net.SplitHostPort(cloud.Endpoints()[0].Addr.String())

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(daemonConfig, state, port)), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	h := fake.New(fake.WithClock(clk))
	newBME(h)

	ns := newNotifySocket(t)
	hup := make(chan os.Signal, 1)
	tick := make(chan time.Time)
	started := make(chan *agent.Agent, 1)
	vars := map[string]string{"NOTIFY_SOCKET": ns.path}
	logs := newDaemonLog()
	e := &env{stdout: &strings.Builder{}, stderr: logs}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runAgent(runCtx, e, runOptions{
			configPath: cfgPath, logFormat: "json", logLevel: "info",
			deps:     agent.Deps{HAL: h, Clock: agent.HALClock(clk), StopTimeout: time.Second},
			hup:      hup,
			getenv:   func(k string) string { return vars[k] },
			watchdog: tick,
			started:  func(a *agent.Agent) { started <- a },
		})
	}()
	defer func() {
		stop()
		select {
		case <-done:
		case <-time.After(runWait):
			t.Error("runAgent did not return")
		}
	}()
	a := <-started
	ns.expect(t, "READY=1")

	// Watchdog pings while the loop is alive.
	tick <- time.Now()
	ns.expect(t, "WATCHDOG=1")

	// agent status, human and JSON, over the unix socket in state_dir.
	out := &strings.Builder{}
	se := &strings.Builder{}
	if code := run(context.Background(), &env{stdout: out, stderr: se}, []string{"status", "--config", cfgPath}); code != 0 {
		t.Fatalf("agent status exit %d: %s", code, se)
	}
	for _, want := range []string{"d1 (running, converged)", "connection", "online", "heater", "heater.on", "temperature", "climate.temperature"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("agent status output lacks %q:\n%s", want, out)
		}
	}
	out.Reset()
	if code := run(context.Background(), &env{stdout: out, stderr: se}, []string{"status", "--socket", filepath.Join(state, agent.StatusSocket), "--json"}); code != 0 {
		t.Fatalf("agent status --json exit %d: %s", code, se)
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(out.String()), &st); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if st.Thing != "d1" || st.Connection.State != "online" || !st.Ready {
		t.Errorf("status JSON: thing %q connection %q ready %v", st.Thing, st.Connection.State, st.Ready)
	}

	// SIGHUP with a broken file: refused, old configuration kept, running.
	old := a.Config()
	if err := os.WriteFile(cfgPath, []byte("thing: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup <- os.Interrupt
	ns.expect(t, "RELOADING=1")
	ns.expect(t, "READY=1")
	logs.waitFor(t, "reload refused")
	if a.Config() != old {
		t.Error("a broken configuration replaced the running one")
	}

	// A stuck loop (a write that never returns) stops the watchdog pings.
	h.SetLatency("pinctrl-bcm2711/17", 1000*time.Hour)
	app := cloudApp(t, cloud.Endpoints()[0].Addr.String(), "d1")
	app.update(t, map[string]any{"heater": true})
	withheld := false
	for i := 0; i < 50 && !withheld; i++ {
		clk.Advance(10 * time.Second)
		tick <- time.Now()
		tick <- time.Now() // the first tick has been handled once this one is taken
		withheld = strings.Contains(logs.String(), "withholding the systemd watchdog ping")
	}
	if !withheld {
		t.Fatalf("the watchdog kept pinging while the loop was stuck:\n%s", logs)
	}
	ns.pending() // pings sent before the loop got stuck
	tick <- time.Now()
	tick <- time.Now()
	if p := ns.pending(); len(p) > 0 {
		t.Errorf("datagrams sent while the loop is stuck: %q", p)
	}

	// The cloud goes first, while every client is steadily connected (mochi
	// v2.7.9 can deadlock in Server.Close when a client detaches at that
	// moment).
	cloud.Close()
	stop()
	ns.expect(t, "STOPPING=1")
	if err := <-done; err != nil {
		t.Errorf("runAgent: %v", err)
	}
	done <- nil // for the deferred stop
	out.Reset()
	code := run(context.Background(), &env{stdout: out, stderr: se}, []string{"status", "--socket", filepath.Join(state, agent.StatusSocket)})
	if code != 1 || !strings.Contains(se.String(), "no agent answers") {
		t.Errorf("agent status with no agent: exit %d, stderr %q", code, se)
	}
}

type shadowApp struct {
	ic *iot.Client
	sc *shadowsync.Client
	sh *shadowsync.Shadow
}

// cloudApp is the cloud side of a thing's classic shadow.
func cloudApp(t *testing.T, addr, thing string) *shadowApp {
	t.Helper()
	ic, err := iot.New(iot.Config{Endpoint: addr, Transport: iot.TransportTCP, ClientID: "app-" + thing, Queue: iot.QueueConfig{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runWait)
	defer cancel()
	if err := ic.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sc, err := shadowsync.NewIOT(ic, shadowsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := sc.Open(ctx, shadowsync.Key{Thing: thing}, shadowsync.ShadowOptions{NoAutoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), runWait)
		defer cancel()
		sc.Close(ctx)
		ic.Close(ctx)
	})
	return &shadowApp{ic: ic, sc: sc, sh: sh}
}

func (a *shadowApp) update(t *testing.T, desired map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runWait)
	defer cancel()
	if _, err := a.sh.Update(ctx, shadowsync.UpdateRequest{Desired: desired}); err != nil {
		t.Fatal(err)
	}
}

func newBME(h *fake.HAL) *chips.BME280 {
	c := chips.NewBME280(chips.DatasheetCalibration())
	c.SetTemperature(21.5)
	h.Bus("1").Attach(0x76, c)
	return c
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{{"run"}, {"run", "--config", "x", "--log-format", "xml"}, {"status", "--socket", "a", "--addr", "b"}} {
		se := &strings.Builder{}
		if code := run(context.Background(), &env{stdout: &strings.Builder{}, stderr: se}, args); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage); stderr %s", args, code, se)
		}
	}
}

func TestRunBadConfigExits1(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("thing: x\ndevices:\n  - {id: a, driver: relai, pin: GPIO17}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	se := &strings.Builder{}
	if code := run(context.Background(), &env{stdout: &strings.Builder{}, stderr: se}, []string{"run", "--config", p}); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(se.String(), "bad.yaml:3") || !strings.Contains(se.String(), "nothing was started") {
		t.Errorf("stderr lacks the problem with its position:\n%s", se)
	}
}
