package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/agent/jobrun"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/jobs"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// jobsRig is the greenhouse with a jobs: section: handlers and downloads in
// temporary directories.
type jobsRig struct {
	*rig
	handlers, downloads string
	mgr                 *jobs.Manager
}

func newJobsRig(t *testing.T) *jobsRig {
	r := &jobsRig{rig: newRig(t), handlers: t.TempDir(), downloads: t.TempDir()}
	ic, err := iot.New(iot.Config{Endpoint: r.cloud.addr, Transport: iot.TransportTCP, ClientID: "jobs-admin",
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
	m, err := jobs.NewManager(ctx, jobs.IOT(ic), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r.mgr = m
	r.closers = append(r.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		m.Close(ctx)
		ic.Close(ctx)
	})
	return r
}

func (r *jobsRig) config() string {
	return greenhouse + fmt.Sprintf(`jobs:
  step_timeout: 5m
  handlers: {dir: %s, timeout: 30s}
  downloads: {dir: %s, max_size: 1MiB}
`, r.handlers, r.downloads)
}

// create queues a job for gh1.
func (r *jobsRig) create(id, doc string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := r.mgr.Create(ctx, jobs.CreateRequest{JobID: id, Targets: []string{"gh1"}, Document: json.RawMessage(doc)}); err != nil {
		r.t.Fatalf("create job %s: %v", id, err)
	}
}

// done waits until the service accepted a terminal status of job id and
// returns the execution as the cloud has it.
func (r *jobsRig) done(from int, id string) jobs.ExecutionInfo {
	r.t.Helper()
	r.rec.waitFor(r.t, from, "terminal status of "+id+" accepted", func(e Event) bool {
		return e.Kind == EventJobSent && e.Key == id && jobrun.Status(e.Status).Terminal()
	})
	return r.execution(id)
}

func (r *jobsRig) execution(id string) jobs.ExecutionInfo {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	rep, err := r.mgr.Describe(ctx, jobs.DescribeRequest{JobID: id, ThingName: "gh1"})
	if err != nil || rep.Execution == nil {
		r.t.Fatalf("describe %s: %v", id, err)
	}
	return *rep.Execution
}

// advanceUntil moves the fake clock a second at a time, each step waiting
// for the loop's heartbeat iteration, until job id has finished on the
// device (for holds and timeouts measured on the agent's clock).
func (r *jobsRig) advanceUntil(from int, id string) {
	r.t.Helper()
	finished := func(e Event) bool { return e.Kind == EventJobFinished && e.Key == id }
	for i := 0; i < 120; i++ {
		for _, e := range r.rec.since(from) {
			if finished(e) {
				return
			}
		}
		m := r.rec.mark()
		r.clock.Advance(time.Second)
		r.rec.waitFor(r.t, m, "an iteration or the job's end", func(e Event) bool {
			return e.Kind == EventIteration || finished(e)
		})
	}
	r.t.Fatalf("job %s did not finish within 120 s of agent time; events:\n%s", id, r.rec.dump(from))
}

func (r *jobsRig) script(name, body string) {
	r.t.Helper()
	p := filepath.Join(r.handlers, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

func TestJobSetDesired(t *testing.T) {
	r := newJobsRig(t)
	r.start(r.config())
	r.ready()
	m := r.rec.mark()
	r.create("sd1", `{"type":"set-desired","desired":{"heater":true,"fan":40}}`)
	x := r.done(m, "sd1")
	if x.Status != "SUCCEEDED" || x.StatusDetails["desired"] != `{"fan":40,"heater":true}` {
		t.Errorf("execution %+v", x)
	}
	d := r.newApp("gh1").doc(t)
	if f, _ := num(d.Reported["fan"]); d.Reported["heater"] != true || f != 40 {
		t.Errorf("reported after the job: %s", d.Raw)
	}
	if h := r.hal.PhysicalHistory(heaterLine); len(h) == 0 || h[len(h)-1] != false {
		t.Errorf("heater wire %v, want low (on, active low) last", h)
	}
	for _, k := range []EventKind{EventJobStarted, EventJobProgress, EventJobFinished} {
		r.rec.waitFor(t, m, string(k), func(e Event) bool { return e.Kind == k && e.Key == "sd1" && e.Property == "set-desired" })
	}

	// A value the agent rejects fails the job at once, with the agent's
	// reason (no waiting for the timeout).
	m = r.rec.mark()
	r.create("sd2", `{"type":"set-desired","desired":{"heater":"on"}}`)
	x = r.done(m, "sd2")
	if x.Status != "FAILED" || !strings.Contains(x.StatusDetails["reason"], `the agent rejected the desired value: heater="on": heater: "on" is a string`) {
		t.Errorf("rejected value: %+v", x)
	}
}

func TestJobPulse(t *testing.T) {
	r := newJobsRig(t)
	r.start(r.config())
	r.ready()
	app := r.newApp("gh1")
	app.waitDoc(t, "cooler reported off", func(d *shadowsync.Document) bool { return d.Reported["cooler"] == false })
	before := len(r.hal.PhysicalHistory(coolerLine))
	m := r.rec.mark()
	r.create("p1", `{"type":"pulse","key":"cooler","value":true,"seconds":5}`)
	r.rec.waitFor(t, m, "holding", func(e Event) bool {
		v, _ := e.Value.(map[string]string)
		return e.Kind == EventJobProgress && v["phase"] == "holding"
	})
	if h := r.hal.PhysicalHistory(coolerLine); len(h) != before+1 || !h[len(h)-1] {
		t.Errorf("cooler wire while holding %v, want it just switched on", h)
	}
	r.advanceUntil(m, "p1")
	x := r.done(m, "p1")
	if x.Status != "SUCCEEDED" || x.StatusDetails["restored"] != "false" {
		t.Errorf("execution %+v", x)
	}
	if h := r.hal.PhysicalHistory(coolerLine)[before:]; fmt.Sprint(h) != "[true false]" {
		t.Errorf("cooler wire during the pulse %v, want [true false]", h)
	}
	d := app.doc(t)
	if d.Desired["cooler"] != false || d.Reported["cooler"] != false {
		t.Errorf("shadow after the pulse: %s", d.Raw)
	}
}

func TestJobRunHandler(t *testing.T) {
	r := newJobsRig(t)
	r.script("greet", `echo "hello $1 from $JOB_ID"; echo warn >&2`)
	r.script("broken", `echo "no disk" >&2; exit 7`)
	r.script("hang", `echo started; exec sleep 300`)
	r.start(r.config())
	r.ready()

	m := r.rec.mark()
	r.create("rh1", `{"type":"run-handler","handler":"greet","args":["world"]}`)
	x := r.done(m, "rh1")
	if x.Status != "SUCCEEDED" || x.StatusDetails["stdout"] != "hello world from rh1" || x.StatusDetails["stderr"] != "warn" || x.StatusDetails["exit_code"] != "0" {
		t.Errorf("greet: %+v", x)
	}

	m = r.rec.mark()
	r.create("rh2", `{"type":"run-handler","handler":"broken"}`)
	x = r.done(m, "rh2")
	if x.Status != "FAILED" || x.StatusDetails["exit_code"] != "7" || x.StatusDetails["stderr"] != "no disk" ||
		x.StatusDetails["reason"] != "handler broken exited with status 7" {
		t.Errorf("broken: %+v", x)
	}

	m = r.rec.mark()
	r.create("rh3", `{"type":"run-handler","handler":"hang","timeout":"3s"}`)
	r.rec.waitFor(t, m, "rh3 started", func(e Event) bool { return e.Kind == EventJobStarted && e.Key == "rh3" })
	if j := r.ag.Status().Jobs; j == nil || j.Running == nil || j.Running.JobID != "rh3" || j.Last == nil || j.Last.JobID != "rh2" {
		t.Errorf("status while rh3 runs: %+v", j)
	}
	r.advanceUntil(m, "rh3")
	x = r.done(m, "rh3")
	if x.Status != "FAILED" || !strings.Contains(x.StatusDetails["reason"], "timed out after 3s") || x.StatusDetails["exit_code"] != "-1" {
		t.Errorf("hang: %+v", x)
	}

	m = r.rec.mark()
	r.create("rh4", `{"type":"run-handler","handler":"../../bin/sh"}`)
	x = r.done(m, "rh4")
	if x.Status != "REJECTED" || !strings.Contains(x.StatusDetails["reason"], "plain file name") {
		t.Errorf("path escape: %+v", x)
	}
}

func TestJobDownloadFile(t *testing.T) {
	body := []byte("new firmware\n")
	sum := sha256.Sum256(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) }))
	defer srv.Close()
	r := newJobsRig(t)
	r.start(r.config())
	r.ready()

	m := r.rec.mark()
	r.create("dl1", fmt.Sprintf(`{"type":"download-file","url":"%s/fw","name":"fw.bin","sha256":"%x"}`, srv.URL, sum))
	x := r.done(m, "dl1")
	if b, err := os.ReadFile(filepath.Join(r.downloads, "fw.bin")); x.Status != "SUCCEEDED" || err != nil || string(b) != string(body) {
		t.Errorf("download: %+v; file %q %v", x, b, err)
	}

	m = r.rec.mark()
	r.create("dl2", fmt.Sprintf(`{"type":"download-file","url":"%s/fw","name":"other.bin","sha256":"%s"}`, srv.URL, strings.Repeat("0", 64)))
	x = r.done(m, "dl2")
	if x.Status != "FAILED" || !strings.Contains(x.StatusDetails["reason"], "sha256 mismatch") || x.StatusDetails["sha256"] != hex.EncodeToString(sum[:]) {
		t.Errorf("bad checksum: %+v", x)
	}
	ents, _ := os.ReadDir(r.downloads)
	if len(ents) != 1 {
		t.Errorf("download dir after a bad checksum: %d entries, want only fw.bin", len(ents))
	}
}

func TestJobUnknownTypeRejected(t *testing.T) {
	r := newJobsRig(t)
	r.start(r.config())
	r.ready()
	m := r.rec.mark()
	r.create("u1", `{"type":"format-disk"}`)
	x := r.done(m, "u1")
	if x.Status != "REJECTED" || !strings.Contains(x.StatusDetails["reason"], `unknown job type "format-disk"`) {
		t.Errorf("unknown type: %+v", x)
	}
	// The next job still runs.
	m = r.rec.mark()
	r.create("u2", `{"type":"set-desired","desired":{"fan":50}}`)
	if x := r.done(m, "u2"); x.Status != "SUCCEEDED" {
		t.Errorf("job after a rejection: %+v", x)
	}
}

// A job running when the agent is killed ends after the restart: FAILED
// for a type that cannot resume; a pulse puts the output back first.
func TestJobInProgressAcrossHardStop(t *testing.T) {
	r := newJobsRig(t)
	r.script("hang", `echo started; exec sleep 300`)
	r.start(r.config())
	r.ready()
	m := r.rec.mark()
	r.create("k1", `{"type":"run-handler","handler":"hang"}`)
	r.rec.waitFor(t, m, "k1 started", func(e Event) bool { return e.Kind == EventJobStarted && e.Key == "k1" })
	if err := r.halt(ErrHardStop); err != nil {
		t.Fatal(err)
	}
	if x := r.execution("k1"); x.Status != "IN_PROGRESS" {
		t.Fatalf("k1 after the hard stop: %+v", x)
	}
	r.start(r.config())
	x := r.done(0, "k1")
	if x.Status != "FAILED" || x.StatusDetails["reason"] != jobrun.ReasonRestarted {
		t.Errorf("k1 after the restart: %+v", x)
	}

	// A pulse holding the cooler on when the agent dies: the restart puts
	// it back off and reports why.
	r.ready()
	m = r.rec.mark()
	r.create("k2", `{"type":"pulse","key":"cooler","value":true,"seconds":60}`)
	r.rec.waitFor(t, m, "holding", func(e Event) bool {
		v, _ := e.Value.(map[string]string)
		return e.Kind == EventJobProgress && v["phase"] == "holding"
	})
	if err := r.halt(ErrHardStop); err != nil {
		t.Fatal(err)
	}
	r.start(r.config())
	x = r.done(0, "k2")
	if x.Status != "FAILED" || !strings.Contains(x.StatusDetails["reason"], "cooler restored to false") {
		t.Errorf("k2 after the restart: %+v", x)
	}
	if h := r.hal.PhysicalHistory(coolerLine); len(h) == 0 || h[len(h)-1] {
		t.Errorf("cooler wire %v: the interrupted pulse left it on", h)
	}
}

// A job cancelled (force) in the cloud while its handler runs: the agent
// kills the handler at the notify-next, and its FAILED is refused and
// dropped (TerminalStateReached), not retried for ever.
func TestJobCancelledInTheCloud(t *testing.T) {
	r := newJobsRig(t)
	r.script("hang", `echo started; exec sleep 300`)
	r.start(r.config())
	r.ready()
	m := r.rec.mark()
	r.create("c1", `{"type":"run-handler","handler":"hang"}`)
	r.rec.waitFor(t, m, "c1 started", func(e Event) bool { return e.Kind == EventJobStarted && e.Key == "c1" })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := r.mgr.Cancel(ctx, jobs.CancelRequest{JobID: "c1", Force: true}); err != nil {
		t.Fatal(err)
	}
	e := r.rec.waitFor(t, m, "c1 finished", func(e Event) bool { return e.Kind == EventJobFinished && e.Key == "c1" })
	if e.Status != "FAILED" || !strings.Contains(e.Message, jobrun.ErrCanceled.Error()) {
		t.Errorf("c1 ended %s: %s", e.Status, e.Message)
	}
	r.rec.waitFor(t, m, "c1's FAILED dropped", func(e Event) bool { return e.Kind == EventJobDropped && e.Key == "c1" })
	// The next job runs.
	r.create("c2", `{"type":"set-desired","desired":{"fan":50}}`)
	if x := r.done(m, "c2"); x.Status != "SUCCEEDED" {
		t.Errorf("job after a cancellation: %+v", x)
	}
	if x := r.execution("c1"); x.Status != "CANCELED" {
		t.Errorf("c1 in the cloud: %+v", x)
	}
}

// A job that finishes while the network is down: its status is on disk at
// once and reaches the service when the connection is back.
func TestJobStatusSentAfterOutage(t *testing.T) {
	r := newJobsRig(t)
	r.link = newLink(t, r.cloud.addr)
	gate := filepath.Join(t.TempDir(), "go")
	r.script("wait-for-gate", `echo waiting; while [ ! -e `+gate+` ]; do sleep 0.02; done; echo passed`)
	r.start(r.config())
	r.ready()
	m := r.rec.mark()
	r.create("o1", `{"type":"run-handler","handler":"wait-for-gate"}`)
	r.rec.waitFor(t, m, "o1 started", func(e Event) bool { return e.Kind == EventJobStarted && e.Key == "o1" })
	r.link.cut()
	r.rec.waitFor(t, m, "offline", kind(EventOffline))
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r.rec.waitFor(t, m, "o1 finished", func(e Event) bool { return e.Kind == EventJobFinished && e.Key == "o1" })
	b, err := os.ReadFile(filepath.Join(r.dir, jobrun.StateFile))
	if err != nil || !strings.Contains(string(b), `"SUCCEEDED"`) || !strings.Contains(string(b), "passed") {
		t.Errorf("jobs.json while offline: %v\n%s", err, b)
	}
	if x := r.execution("o1"); x.Status != "IN_PROGRESS" {
		t.Errorf("o1 in the cloud during the outage: %+v", x)
	}
	r.link.restore()
	x := r.done(m, "o1")
	if x.Status != "SUCCEEDED" || x.StatusDetails["stdout"] != `waiting\npassed` {
		t.Errorf("o1 after the outage: %+v", x)
	}
}

// A device with no shadows at all still runs jobs (it never "converges").
func TestJobsWithoutShadows(t *testing.T) {
	r := newJobsRig(t)
	r.script("greet", `echo hi`)
	cfg := strings.Replace(r.config(), greenhouse, `
thing: gh1
board: pi4b
state_dir: ${STATE}
connection:
  endpoint: 127.0.0.1
  port: 1
  transport: tcp
  backoff: {base: 20ms, max: 200ms, stable: 1s, jitter: none}
shadows: []
`, 1)
	r.start(cfg)
	m := r.rec.mark()
	r.create("ns1", `{"type":"run-handler","handler":"greet"}`)
	if x := r.done(m, "ns1"); x.Status != "SUCCEEDED" || x.StatusDetails["stdout"] != "hi" {
		t.Errorf("job on a device without shadows: %+v", x)
	}
}

// The job runner is built at start: a reload that changes the jobs:
// section is refused with the reason.
func TestReloadRefusesJobsChange(t *testing.T) {
	dir := t.TempDir()
	a, err := New(parseConfig(t, greenhouse+"jobs: {step_timeout: 5m}\n", dir), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Reload(parseConfig(t, greenhouse+"jobs: {step_timeout: 6m}\n", dir))
	if !errors.Is(err, ErrReloadRefused) || !strings.Contains(err.Error(), "the jobs: section changed") {
		t.Errorf("reload with another step timeout: %v", err)
	}
	if err := a.Reload(parseConfig(t, greenhouse+"jobs: {step_timeout: 5m}\n", dir)); err != nil {
		t.Errorf("reload with the same jobs section: %v", err)
	}
}
