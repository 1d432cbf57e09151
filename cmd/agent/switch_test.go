package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/agent/jobrun"
	"github.com/pinshadow/pinshadow/agent/supervisor"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/jobs"
	"github.com/pinshadow/pinshadow/localcloud"
)

// End-to-end tests of the apply-config and reboot job types: `agent run`
// (runAgent, under its supervisor) on the fake HAL, against the embedded
// local cloud with its Jobs service; jobs are created and followed through
// the management API as a fleet backend would.

// switchConfig is a configuration with the heater on GPIO17; extra adds
// devices and desired keys (the lamp). %[1]s state dir, %[2]s port.
const switchConfig = `thing: d1
board: pi4b
state_dir: %[1]s
connection:
  endpoint: 127.0.0.1
  port: %[2]s
  transport: tcp
  backoff: {base: 20ms, max: 200ms, jitter: none}
devices:
  - {id: heater, driver: relay, pin: GPIO17}
%[3]sshadows:
  - desired:
      heater: {device: heater, boot: false}
%[4]sjobs: {apply_config: {}, reboot: {}}
`

const (
	lampDevice = "  - {id: lamp, driver: relay, pin: %s}\n"
	lampKey    = "      lamp: {device: lamp, boot: false}\n"
)

// switchWorld is one test's cloud, hardware, files and daemon.
type switchWorld struct {
	t       *testing.T
	cloud   *localcloud.Server
	port    string
	dir     string
	state   string
	cfgPath string
	hal     *fake.HAL
	reboot  jobrun.RebootOptions
	app     *jobsApp

	daemon *daemon
}

type daemon struct {
	stop context.CancelFunc
	done chan error
	logs *daemonLog
}

func newSwitchWorld(t *testing.T) *switchWorld {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first: runs last
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
	_, port, _ := net.SplitHostPort(cloud.Endpoints()[0].Addr.String())
	dir := t.TempDir()
	w := &switchWorld{t: t, cloud: cloud, port: port, dir: dir, state: filepath.Join(dir, "state"),
		cfgPath: filepath.Join(dir, "agent.yaml"),
		// The board has GPIO17 and GPIO27 wired; GPIO22 is not there.
		hal: fake.New(fake.WithPins("pinctrl-bcm2711/17", "pinctrl-bcm2711/27"))}
	w.app = newJobsApp(t, cloud.Endpoints()[0].Addr.String(), "d1")
	t.Cleanup(func() {
		// The cloud goes first, while every client is steadily connected
		// (see TestRunDaemon), then the daemon and the app.
		cloud.Close()
		w.stopDaemon()
	})
	return w
}

// config renders the configuration; lampPin "" leaves the lamp out.
func (w *switchWorld) config(lampPin, port string) string {
	dev, key := "", ""
	if lampPin != "" {
		dev, key = fmt.Sprintf(lampDevice, lampPin), lampKey
	}
	return fmt.Sprintf(switchConfig, w.state, port, dev, key)
}

func (w *switchWorld) writeConfig(text string) {
	if err := os.WriteFile(w.cfgPath, []byte(text), 0o640); err != nil {
		w.t.Fatal(err)
	}
}

func (w *switchWorld) file() string {
	b, err := os.ReadFile(w.cfgPath)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b)
}

// startDaemon runs `agent run` in process (a boot of the device).
func (w *switchWorld) startDaemon() *daemon {
	w.t.Helper()
	if w.daemon != nil {
		w.t.Fatal("a daemon is already running")
	}
	logs := newDaemonLog()
	ctx, stop := context.WithCancel(context.Background())
	d := &daemon{stop: stop, done: make(chan error, 1), logs: logs}
	go func() {
		d.done <- runAgent(ctx, &env{stdout: &strings.Builder{}, stderr: logs}, runOptions{
			configPath: w.cfgPath, logFormat: "text", logLevel: "info",
			deps:   agent.Deps{HAL: w.hal, StopTimeout: time.Second},
			reboot: w.reboot,
		})
	}()
	w.daemon = d
	return d
}

// stopDaemon stops the daemon (a power loss, as far as the supervisor's
// records are concerned: nothing is written on the way down).
func (w *switchWorld) stopDaemon() {
	w.t.Helper()
	d := w.daemon
	if d == nil {
		return
	}
	w.daemon = nil
	d.stop()
	select {
	case err := <-d.done:
		if err != nil {
			w.t.Errorf("runAgent: %v\n%s", err, d.logs)
		}
	case <-time.After(runWait):
		w.t.Errorf("runAgent did not return\n%s", d.logs)
	}
}

// jobsApp is the cloud side of the thing's jobs.
type jobsApp struct {
	ic     *iot.Client
	mgr    *jobs.Manager
	thing  string
	notify chan struct{}
}

func newJobsApp(t *testing.T, addr, thing string) *jobsApp {
	t.Helper()
	ic, err := iot.New(iot.Config{Endpoint: addr, Transport: iot.TransportTCP, ClientID: "fleet-" + thing, Queue: iot.QueueConfig{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	a := &jobsApp{ic: ic, thing: thing, notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), runWait)
	defer cancel()
	err = ic.SubscribeMany(ctx, []iot.Subscription{{Filter: "$aws/things/" + thing + "/jobs/notify", QoS: iot.QoS1,
		Handler: func(iot.Message) {
			select {
			case a.notify <- struct{}{}:
			default:
			}
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if a.mgr, err = jobs.NewManager(ctx, jobs.IOT(ic), runWait); err != nil {
		t.Fatal(err)
	}
	if err := ic.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), runWait)
		defer cancel()
		a.mgr.Close(ctx)
		ic.Close(ctx)
	})
	return a
}

func (a *jobsApp) create(t *testing.T, id string, doc map[string]any) {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runWait)
	defer cancel()
	if _, err := a.mgr.Create(ctx, jobs.CreateRequest{JobID: id, Targets: []string{a.thing}, Document: b}); err != nil {
		t.Fatal(err)
	}
}

// wait returns the execution of job id once it has ended (the thing's
// pending list changes then, which the service notifies).
func (a *jobsApp) wait(t *testing.T, id string, d *daemon) jobs.ExecutionInfo {
	t.Helper()
	deadline := time.NewTimer(2 * runWait)
	defer deadline.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), runWait)
		r, err := a.mgr.Describe(ctx, jobs.DescribeRequest{JobID: id, ThingName: a.thing})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if x := r.Execution; x != nil && x.Status != "QUEUED" && x.Status != "IN_PROGRESS" {
			return *x
		}
		select {
		case <-a.notify:
		case <-deadline.C:
			logs := ""
			if d != nil {
				logs = d.logs.String()
			}
			t.Fatalf("job %s did not end: %+v\n%s", id, r.Execution, logs)
		}
	}
}

func applyDoc(yaml string) map[string]any {
	return map[string]any{"type": "apply-config", "config": yaml}
}

// A new device and key arrive by apply-config: the file is replaced (the
// old one kept as a backup), the agent restarts on it, the job SUCCEEDED,
// and the new key drives the new device.
func TestApplyConfigJobSwitchesTheAgent(t *testing.T) {
	w := newSwitchWorld(t)
	old := w.config("", w.port)
	w.writeConfig(old)
	d := w.startDaemon()
	d.logs.waitFor(t, "running jobs")

	next := w.config("GPIO27", w.port)
	w.app.create(t, "cfg-1", applyDoc(next))
	x := w.app.wait(t, "cfg-1", d)
	if x.Status != "SUCCEEDED" || x.StatusDetails["config"] != w.cfgPath || x.StatusDetails["backup"] != supervisor.BackupPath(w.cfgPath) {
		t.Fatalf("execution %s %v\n%s", x.Status, x.StatusDetails, d.logs)
	}
	if w.file() != next {
		t.Fatalf("the configuration file was not replaced:\n%s", w.file())
	}
	if b, _ := os.ReadFile(supervisor.BackupPath(w.cfgPath)); string(b) != old {
		t.Fatalf("backup:\n%s", b)
	}
	// The new key reaches the new device.
	cloudApp(t, w.cloud.Endpoints()[0].Addr.String(), "d1").update(t, map[string]any{"lamp": true})
	ctx, cancel := context.WithTimeout(context.Background(), runWait)
	defer cancel()
	if _, err := w.hal.WaitOp(ctx, func(op fake.Op) bool {
		return op.Kind == fake.OpSet && op.Name == "pinctrl-bcm2711/27" && op.Level == hal.High
	}); err != nil {
		t.Fatalf("the lamp was not switched on: %v\n%s", err, d.logs)
	}
}

// A new state directory: the job's execution is not in the new agent's
// jobs.json, so it comes back from start-next and still gets its outcome.
func TestApplyConfigJobMovesTheStateDir(t *testing.T) {
	w := newSwitchWorld(t)
	old := w.config("", w.port)
	w.writeConfig(old)
	d := w.startDaemon()
	d.logs.waitFor(t, "running jobs")

	next := strings.Replace(old, "state_dir: "+w.state, "state_dir: "+w.state+"-2", 1)
	w.app.create(t, "cfg-1", applyDoc(next))
	if x := w.app.wait(t, "cfg-1", d); x.Status != "SUCCEEDED" {
		t.Fatalf("execution %s %v\n%s", x.Status, x.StatusDetails, d.logs)
	}
	if _, err := os.Stat(filepath.Join(w.state+"-2", "jobs.json")); err != nil {
		t.Fatalf("the new agent does not keep its jobs in the new state directory: %v", err)
	}
}

// A change the live reload takes (a key renamed, same devices) is applied
// without restarting the agent.
func TestApplyConfigJobByLiveReload(t *testing.T) {
	w := newSwitchWorld(t)
	old := w.config("", w.port)
	w.writeConfig(old)
	d := w.startDaemon()
	d.logs.waitFor(t, "running jobs")

	next := strings.Replace(old, "      heater: {device: heater, boot: false}", "      warm: {device: heater, boot: false}", 1)
	w.app.create(t, "cfg-1", applyDoc(next))
	if x := w.app.wait(t, "cfg-1", d); x.Status != "SUCCEEDED" {
		t.Fatalf("execution %s %v\n%s", x.Status, x.StatusDetails, d.logs)
	}
	if w.file() != next {
		t.Fatalf("the configuration file was not replaced:\n%s", w.file())
	}
	logs := d.logs.String()
	if !strings.Contains(logs, "the new configuration runs (live reload)") || strings.Contains(logs, "restarting the agent on it") {
		t.Fatalf("not applied by a live reload:\n%s", logs)
	}
	cloudApp(t, w.cloud.Endpoints()[0].Addr.String(), "d1").update(t, map[string]any{"warm": true})
	ctx, cancel := context.WithTimeout(context.Background(), runWait)
	defer cancel()
	if _, err := w.hal.WaitOp(ctx, func(op fake.Op) bool {
		return op.Kind == fake.OpSet && op.Name == "pinctrl-bcm2711/17" && op.Level == hal.High
	}); err != nil {
		t.Fatalf("the renamed key does not drive the heater: %v\n%s", err, d.logs)
	}
}

// A device with jobs but no shadows never converges: online with its
// devices opened is what a new configuration must reach instead.
func TestApplyConfigJobWithoutShadows(t *testing.T) {
	w := newSwitchWorld(t)
	old := fmt.Sprintf("thing: d1\nboard: pi4b\nstate_dir: %s\nconnection:\n  endpoint: 127.0.0.1\n  port: %s\n  transport: tcp\n"+
		"  backoff: {base: 20ms, max: 200ms, jitter: none}\nshadows: []\njobs: {apply_config: {}, reboot: {}}\n", w.state, w.port)
	w.writeConfig(old)
	d := w.startDaemon()
	d.logs.waitFor(t, "running jobs")

	next := strings.Replace(old, "  transport: tcp\n", "  transport: tcp\n  keep_alive: 45s\n", 1) // needs a restart
	w.app.create(t, "cfg-1", applyDoc(next))
	if x := w.app.wait(t, "cfg-1", d); x.Status != "SUCCEEDED" {
		t.Fatalf("execution %s %v\n%s", x.Status, x.StatusDetails, d.logs)
	}
	if !strings.Contains(d.logs.String(), "restarting the agent on it") || w.file() != next {
		t.Fatalf("not switched by a restart:\n%s", d.logs)
	}
}

// Invalid YAML is REJECTED with the problem, and nothing changes.
func TestApplyConfigJobInvalidConfigIsRejected(t *testing.T) {
	w := newSwitchWorld(t)
	old := w.config("", w.port)
	w.writeConfig(old)
	d := w.startDaemon()
	d.logs.waitFor(t, "running jobs")

	w.app.create(t, "bad-yaml", applyDoc("thing: d1\ndevices: [\n"))
	x := w.app.wait(t, "bad-yaml", d)
	if x.Status != "REJECTED" || !strings.Contains(x.StatusDetails["reason"], "the new configuration has 1 problem: "+w.cfgPath+":") {
		t.Fatalf("execution %s %v", x.Status, x.StatusDetails)
	}
	// Valid YAML, invalid configuration: every problem counted, the first listed.
	w.app.create(t, "bad-pin", applyDoc(strings.Replace(w.config("GPIO99", w.port), "driver: relay, pin: GPIO17", "driver: relai, pin: GPIO17", 1)))
	x = w.app.wait(t, "bad-pin", d)
	if x.Status != "REJECTED" || !strings.Contains(x.StatusDetails["reason"], "the new configuration has 2 problems: ") ||
		!strings.Contains(x.StatusDetails["reason"], `did you mean "relay"?`) || !strings.Contains(x.StatusDetails["reason"], "GPIO99") {
		t.Fatalf("execution %s %v", x.Status, x.StatusDetails)
	}
	// Valid, but the agent on it could not report the job.
	for id, text := range map[string]string{
		"other-thing": strings.Replace(old, "thing: d1", "thing: d2", 1),
		"no-jobs":     strings.Replace(old, "jobs: {apply_config: {}, reboot: {}}", "", 1),
	} {
		w.app.create(t, id, applyDoc(text))
		x = w.app.wait(t, id, d)
		want := map[string]string{"other-thing": `for thing "d2", this device is "d1"`, "no-jobs": "no enabled jobs: section"}[id]
		if x.Status != "REJECTED" || !strings.Contains(x.StatusDetails["reason"], want) {
			t.Fatalf("%s: execution %s %v", id, x.Status, x.StatusDetails)
		}
	}
	if w.file() != old {
		t.Fatalf("a rejected configuration touched the file:\n%s", w.file())
	}
	if _, err := os.Stat(supervisor.BackupPath(w.cfgPath)); !os.IsNotExist(err) {
		t.Fatalf("a rejected configuration left a backup: %v", err)
	}
}

// Configurations that validate but cannot run are rolled back: the old
// file is back, an agent runs on it, and the job FAILED with the reason.
func TestApplyConfigJobRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name, next, reason string
		verify             string
	}{
		{name: "missing line", next: "GPIO22", reason: `a device failed: opening device "lamp" (relay, GPIO22 (pin 15))`},
		{name: "unreachable endpoint", next: "unreachable", verify: "1s", reason: "the agent on the new configuration did not converge with the cloud within 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newSwitchWorld(t)
			old := w.config("", w.port)
			w.writeConfig(old)
			d := w.startDaemon()
			d.logs.waitFor(t, "running jobs")

			next := w.config(tc.next, w.port)
			if tc.next == "unreachable" {
				next = w.config("", "1")
			}
			doc := applyDoc(next)
			if tc.verify != "" {
				doc["verify_timeout"] = tc.verify
			}
			w.app.create(t, "cfg-1", doc)
			x := w.app.wait(t, "cfg-1", d)
			if x.Status != "FAILED" || !strings.Contains(x.StatusDetails["reason"], tc.reason) ||
				!strings.HasSuffix(x.StatusDetails["reason"], "the previous configuration was restored") {
				t.Fatalf("execution %s %v\n%s", x.Status, x.StatusDetails, d.logs)
			}
			if w.file() != old {
				t.Fatalf("the old configuration is not back:\n%s", w.file())
			}
			// The old agent runs: the next job is taken and done.
			w.app.create(t, "after", map[string]any{"type": "set-desired", "desired": map[string]any{"heater": true}})
			if x := w.app.wait(t, "after", d); x.Status != "SUCCEEDED" {
				t.Fatalf("a job after the rollback: %s %v", x.Status, x.StatusDetails)
			}
		})
	}
}

// The device dies while the new configuration is being verified: at the
// next start the old file is back and the job ends FAILED, not hanging.
func TestApplyConfigJobKilledDuringVerification(t *testing.T) {
	w := newSwitchWorld(t)
	old := w.config("", w.port)
	w.writeConfig(old)
	d := w.startDaemon()
	d.logs.waitFor(t, "running jobs")

	next := w.config("", "1") // never converges: the verification lasts its full 2m
	w.app.create(t, "cfg-1", applyDoc(next))
	d.logs.waitFor(t, "apply-config: verifying the new configuration")
	logs := d.logs
	w.stopDaemon()
	if got := w.file(); got != next {
		t.Fatalf("the new file should be in place while it is verified; the file:\n%s\nlogs:\n%s", got, logs)
	}

	d = w.startDaemon()
	x := w.app.wait(t, "cfg-1", d)
	if x.Status != "FAILED" || !strings.Contains(x.StatusDetails["reason"], "the agent stopped (crash, kill or restart) while the new configuration was being verified") {
		t.Fatalf("execution %s %v\n%s", x.Status, x.StatusDetails, d.logs)
	}
	if w.file() != old {
		t.Fatalf("the old configuration is not back:\n%s", w.file())
	}
}

// fakeBoot is the machine under a reboot job: its boot id, and a reboot
// command that only records that it ran and what the cloud knew of the job
// at that moment (the test power-cycles).
type fakeBoot struct {
	id    atomic.Value // string
	ran   chan []string
	cloud func() map[string]string // the execution's statusDetails in the service
	seen  map[string]string
}

func newFakeBoot() *fakeBoot {
	b := &fakeBoot{ran: make(chan []string, 1)}
	b.id.Store("boot-1")
	return b
}

func (b *fakeBoot) options(timeout time.Duration) jobrun.RebootOptions {
	return jobrun.RebootOptions{Command: []string{"fake-reboot"}, Timeout: timeout,
		BootID: func() (string, error) { return b.id.Load().(string), nil },
		Exec: func(_ context.Context, argv []string) ([]byte, error) {
			if b.cloud != nil {
				b.seen = b.cloud()
			}
			b.ran <- argv
			return nil, nil
		}}
}

func TestRebootJobSucceedsAfterTheRestart(t *testing.T) {
	w := newSwitchWorld(t)
	w.writeConfig(w.config("", w.port))
	boot := newFakeBoot()
	w.reboot = boot.options(time.Hour)
	d := w.startDaemon()
	d.logs.waitFor(t, "running jobs")

	boot.cloud = func() map[string]string {
		ctx, cancel := context.WithTimeout(context.Background(), runWait)
		defer cancel()
		r, err := w.app.mgr.Describe(ctx, jobs.DescribeRequest{JobID: "reboot-1", ThingName: "d1"})
		if err != nil || r.Execution == nil {
			return nil
		}
		return r.Execution.StatusDetails
	}
	w.app.create(t, "reboot-1", map[string]any{"type": "reboot"})
	select {
	case argv := <-boot.ran:
		if strings.Join(argv, " ") != "fake-reboot" {
			t.Fatalf("reboot command %v", argv)
		}
	case <-time.After(runWait):
		t.Fatalf("the reboot command did not run\n%s", d.logs)
	}
	// The service knew of the reboot request before the command ran (the
	// "rebooting" note persisted just before it may have arrived too).
	if ph := boot.seen["phase"]; (ph != "requested" && ph != "rebooting") || boot.seen["boot_id"] != "boot-1" {
		t.Fatalf("statusDetails in the cloud when the command ran: %v", boot.seen)
	}
	// The machine goes down and comes back with a new boot id.
	w.stopDaemon()
	boot.id.Store("boot-2")
	d = w.startDaemon()
	x := w.app.wait(t, "reboot-1", d)
	if x.Status != "SUCCEEDED" || x.StatusDetails["boot_id"] != "boot-2" || x.StatusDetails["previous_boot_id"] != "boot-1" {
		t.Fatalf("execution %s %v\n%s", x.Status, x.StatusDetails, d.logs)
	}
	select {
	case <-boot.ran:
		t.Fatal("the reboot command ran again after the restart")
	default:
	}
}

func TestRebootJobThatDoesNotRebootFails(t *testing.T) {
	w := newSwitchWorld(t)
	w.writeConfig(w.config("", w.port))
	boot := newFakeBoot()
	w.reboot = boot.options(300 * time.Millisecond)
	d := w.startDaemon()
	d.logs.waitFor(t, "running jobs")

	w.app.create(t, "reboot-1", map[string]any{"type": "reboot"})
	x := w.app.wait(t, "reboot-1", d)
	if x.Status != "FAILED" || x.StatusDetails["reason"] != "reboot did not happen: the boot id is still boot-1 300ms after the reboot was requested" {
		t.Fatalf("execution %s %v\n%s", x.Status, x.StatusDetails, d.logs)
	}
}
