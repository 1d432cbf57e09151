package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// cfgText is a valid configuration whose thing name tells the fake
// generation how to behave: good converges, nodev has a device fail to
// open, slow never converges, crash stops at once with an error.
func cfgText(thing string) string {
	return fmt.Sprintf("thing: %s\nboard: pi4b\nconnection:\n  endpoint: 127.0.0.1\n  transport: tcp\nshadows: []\n", thing)
}

type fakeAgent struct {
	ready chan struct{}
}

func (f *fakeAgent) Ready() <-chan struct{} { return f.ready }

// Reload takes configurations whose thing starts with "live" (as the agent
// takes a mapping change) and refuses the others (as a device change).
func (f *fakeAgent) Reload(cfg *config.Config) error {
	if strings.HasPrefix(cfg.Thing, "live") {
		return nil
	}
	return fmt.Errorf("%w: the devices or their wiring changed", agent.ErrReloadRefused)
}
func (f *fakeAgent) Status() agent.Status {
	var s agent.Status
	s.Connection.State = "connecting"
	s.Connection.LastError = "dial tcp 127.0.0.1:1: connection refused"
	return s
}

// fakeClock's timers fire when the test says.
type fakeClock struct{ timers chan chan time.Time }

func (c *fakeClock) Now() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }
func (c *fakeClock) NewTimer(time.Duration) (<-chan time.Time, func() bool) {
	t := make(chan time.Time, 1)
	c.timers <- t
	return t, func() bool { return true }
}

type harness struct {
	t     *testing.T
	path  string
	sup   *Supervisor
	gens  chan *Generation
	clock *fakeClock
	done  chan error
	stop  context.CancelFunc
}

func start(t *testing.T, initial string) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(cfgText(initial)), 0o640); err != nil {
		t.Fatal(err)
	}
	return startAt(t, path)
}

// startAt runs a supervisor on the configuration at path (a restart when
// another ran there before).
func startAt(t *testing.T, path string) *harness {
	t.Helper()
	h := &harness{t: t, path: path, gens: make(chan *Generation, 4), clock: &fakeClock{timers: make(chan chan time.Time, 4)}, done: make(chan error, 1)}
	sup, err := New(Options{Path: path, Clock: h.clock, Run: h.run,
		Check: func(cfg *config.Config) error {
			if cfg.Thing == "nodriver" {
				return errors.New(`device "x": unknown driver`)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.sup = sup
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() { h.done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(wait):
			t.Error("the supervisor did not stop")
		}
	})
	return h
}

func (h *harness) run(ctx context.Context, g *Generation) error {
	a := &fakeAgent{ready: make(chan struct{})}
	switch g.Config.Thing {
	case "crash":
		h.gens <- g
		return errors.New("boom")
	case "nodev":
		g.Observe(agent.Event{Kind: agent.EventFault, Device: "heater", Message: `opening device "heater" (relay, GPIO99): not found`})
	case "slow":
	default:
		// These configurations have no shadows: online and a loop
		// iteration, not Ready, end the trial.
		g.Observe(agent.Event{Kind: agent.EventOnline})
		g.Observe(agent.Event{Kind: agent.EventIteration})
	}
	g.Started(a)
	h.gens <- g // the test acts once the agent has started
	<-ctx.Done()
	return nil
}

func (h *harness) gen() *Generation {
	h.t.Helper()
	select {
	case g := <-h.gens:
		return g
	case <-time.After(wait):
		h.t.Fatal("no generation started")
		return nil
	}
}

func (h *harness) outcome(job string) Record {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r, err := h.sup.Outcome(ctx, job)
	if err != nil {
		h.t.Fatalf("Outcome(%s): %v", job, err)
	}
	return r
}

func (h *harness) file() string {
	b, err := os.ReadFile(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

func (h *harness) apply(job, thing string) {
	h.t.Helper()
	data := []byte(cfgText(thing))
	if _, err := h.sup.Validate(data); err != nil {
		h.t.Fatalf("Validate: %v", err)
	}
	if err := h.sup.Apply(context.Background(), Request{Job: job, Data: data, VerifyTimeout: time.Minute}); err != nil {
		h.t.Fatalf("Apply: %v", err)
	}
}

func TestApplySucceeds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(cfgText("good")), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startAt(t, path)
	if g := h.gen(); g.Trial || g.Config.Thing != "good" {
		t.Fatalf("first generation: trial %v thing %q", g.Trial, g.Config.Thing)
	}
	h.apply("job1", "good2")
	g := h.gen()
	if !g.Trial || g.Config.Thing != "good2" {
		t.Fatalf("after the switch: trial %v thing %q, want a trial of good2", g.Trial, g.Config.Thing)
	}
	r := h.outcome("job1")
	if r.Phase != PhaseApplied {
		t.Fatalf("phase %s (%s), want applied", r.Phase, r.Reason)
	}
	if got := h.file(); got != cfgText("good2") {
		t.Fatalf("config file after success:\n%s", got)
	}
	if b, _ := os.ReadFile(BackupPath(h.path)); string(b) != cfgText("good") {
		t.Fatalf("backup holds:\n%s", b)
	}
	for _, p := range []string{h.path, BackupPath(h.path)} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (%v), want the configuration's 0600", p, st.Mode(), err)
		}
	}
	// The same job again (resumed after the restart) changes nothing.
	if err := h.sup.Apply(context.Background(), Request{Job: "job1", Data: []byte("junk")}); err != nil {
		t.Fatal(err)
	}
	if h.file() != cfgText("good2") {
		t.Fatal("a repeated Apply of the same job rewrote the file")
	}
	// The record on disk says so too.
	onDisk, err := loadRecord(RecordPath(h.path))
	if err != nil || onDisk.Phase != PhaseApplied || onDisk.Job != "job1" {
		t.Fatalf("record on disk %+v, %v", onDisk, err)
	}
}

func TestRollback(t *testing.T) {
	for _, tc := range []struct {
		thing, reason string
		timeout       bool
	}{
		{thing: "nodev", reason: `a device failed: opening device "heater" (relay, GPIO99): not found; the previous configuration was restored`},
		{thing: "slow", timeout: true, reason: "did not converge with the cloud within 1m0s (connection connecting: dial tcp 127.0.0.1:1: connection refused)"},
		{thing: "crash", reason: "the agent on the new configuration stopped: boom"},
	} {
		t.Run(tc.thing, func(t *testing.T) {
			h := start(t, "good")
			h.gen()
			h.apply("j", tc.thing)
			if g := h.gen(); !g.Trial {
				t.Fatal("the new configuration is not on trial")
			}
			if tc.timeout {
				select {
				case tm := <-h.clock.timers:
					tm <- time.Time{}
				case <-time.After(wait):
					t.Fatal("no verify timer")
				}
			}
			g := h.gen()
			if g.Trial || g.Config.Thing != "good" {
				t.Fatalf("after the rollback: trial %v thing %q, want the old configuration", g.Trial, g.Config.Thing)
			}
			r := h.outcome("j")
			if r.Phase != PhaseRolledBack || !strings.Contains(r.Reason, tc.reason) {
				t.Fatalf("outcome %s %q, want rolled_back with %q", r.Phase, r.Reason, tc.reason)
			}
			if h.file() != cfgText("good") {
				t.Fatalf("config file after rollback:\n%s", h.file())
			}
		})
	}
}

func TestSwitchToUnloadableFileRollsBack(t *testing.T) {
	h := start(t, "good")
	h.gen()
	// Passes Validate's config part only when Check is skipped: write it
	// straight through Apply, as if the file changed between the two.
	if err := h.sup.Apply(context.Background(), Request{Job: "j", Data: []byte(cfgText("nodriver"))}); err != nil {
		t.Fatal(err)
	}
	if g := h.gen(); g.Config.Thing != "good" || g.Trial {
		t.Fatalf("generation %q trial %v, want the old configuration again", g.Config.Thing, g.Trial)
	}
	if r := h.outcome("j"); r.Phase != PhaseRolledBack || !strings.Contains(r.Reason, "unknown driver") {
		t.Fatalf("outcome %+v", r)
	}
}

func TestValidate(t *testing.T) {
	h := start(t, "good")
	h.gen()
	_, err := h.sup.Validate([]byte("thing: [\n"))
	var probs config.Errors
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &probs) || len(probs) == 0 {
		t.Fatalf("Validate of broken YAML: %v", err)
	}
	if _, err := h.sup.Validate([]byte(cfgText("nodriver"))); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "unknown driver") {
		t.Fatalf("Validate with a failing Check: %v", err)
	}
	if h.file() != cfgText("good") {
		t.Fatal("Validate touched the file")
	}
}

func TestBusyWhileVerifying(t *testing.T) {
	h := start(t, "good")
	h.gen()
	h.apply("j1", "slow")
	h.gen()
	err := h.sup.Apply(context.Background(), Request{Job: "j2", Data: []byte(cfgText("good"))})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("a second Apply while verifying: %v, want ErrBusy", err)
	}
}

// A process killed while verifying finds, at its next start, the record
// still verifying: the old file is put back and the job has a final outcome.
func TestRecoverAfterKillDuringVerification(t *testing.T) {
	h := start(t, "good")
	h.gen()
	h.apply("j", "slow")
	h.gen()
	h.stop()
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	h.done <- nil // for the cleanup
	if r, _ := loadRecord(RecordPath(h.path)); r == nil || r.Phase != PhaseVerifying {
		t.Fatalf("record after the kill: %+v", r)
	}
	if h.file() != cfgText("slow") {
		t.Fatal("the new file is not in place after the kill")
	}

	h3 := startAt(t, h.path)
	if g := h3.gen(); g.Trial || g.Config.Thing != "good" {
		t.Fatalf("after restart: trial %v thing %q, want the old configuration", g.Trial, g.Config.Thing)
	}
	r := h3.outcome("j")
	if r.Phase != PhaseRolledBack || !strings.Contains(r.Reason, "while the new configuration was being verified") {
		t.Fatalf("outcome %+v", r)
	}
	if h3.file() != cfgText("good") {
		t.Fatalf("file after recovery:\n%s", h3.file())
	}
}

// A change the live reload takes is applied without a restart.
func TestApplyByLiveReload(t *testing.T) {
	h := start(t, "good")
	h.gen()
	h.apply("j", "live2")
	if r := h.outcome("j"); r.Phase != PhaseApplied {
		t.Fatalf("outcome %+v", r)
	}
	if h.file() != cfgText("live2") || h.sup.Current().Thing != "live2" {
		t.Fatalf("file %q, current %q", h.file(), h.sup.Current().Thing)
	}
	select {
	case g := <-h.gens:
		t.Fatalf("a new generation (%s) started for a change the reload takes", g.Config.Thing)
	default:
	}
}

// A configuration reached through a symlink keeps the link; the file it
// points to is replaced (and restored on rollback).
func TestSymlinkedConfigKeepsItsLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.yaml")
	if err := os.WriteFile(target, []byte(cfgText("good")), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "agent.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	h := startAt(t, link)
	h.gen()
	h.apply("j1", "good2")
	h.gen()
	if r := h.outcome("j1"); r.Phase != PhaseApplied || r.Config != target {
		t.Fatalf("outcome %+v", r)
	}
	if dst, err := os.Readlink(link); err != nil || dst != target {
		t.Fatalf("the link became %q (%v)", dst, err)
	}
	h.apply("j2", "nodev")
	h.gen()
	h.gen()
	if r := h.outcome("j2"); r.Phase != PhaseRolledBack {
		t.Fatalf("outcome %+v", r)
	}
	if b, _ := os.ReadFile(target); string(b) != cfgText("good2") {
		t.Fatalf("target after rollback:\n%s", b)
	}
	if _, err := os.Readlink(link); err != nil {
		t.Fatalf("the rollback replaced the link: %v", err)
	}
}

// A job resumed late (a state directory used again) gets the outcome of its
// earlier switch and is not applied a second time, also after a restart.
func TestEarlierSwitchIsNotAppliedAgain(t *testing.T) {
	h := start(t, "good")
	h.gen()
	h.apply("j1", "good2")
	h.gen()
	h.outcome("j1")
	h.apply("j2", "good3")
	h.gen()
	h.outcome("j2")
	h.stop()
	<-h.done
	h.done <- nil

	h2 := startAt(t, h.path)
	h2.gen()
	if err := h2.sup.Apply(context.Background(), Request{Job: "j1", Data: []byte(cfgText("good2"))}); err != nil {
		t.Fatal(err)
	}
	if h2.file() != cfgText("good3") {
		t.Fatalf("a late j1 was applied again:\n%s", h2.file())
	}
	if r := h2.outcome("j1"); r.Phase != PhaseApplied || r.Job != "j1" || len(r.Earlier) != 0 {
		t.Fatalf("outcome of j1: %+v", r)
	}
	if _, err := h2.sup.Outcome(context.Background(), "j0"); !errors.Is(err, ErrNoSwitch) {
		t.Fatalf("Outcome of an unknown job: %v", err)
	}
}

// hookHandler is a slog.Handler calling on with every message: the test
// acts at an exact point of the supervisor's code.
type hookHandler struct{ on func(msg string) }

func (h hookHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h hookHandler) Handle(_ context.Context, r slog.Record) error {
	h.on(r.Message)
	return nil
}
func (h hookHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h hookHandler) WithGroup(string) slog.Handler      { return h }

// A stop during a trial leaves the trial to the next start, even when the
// agent going down reports a device fault (an open cancelled by the stop)
// before the supervisor looks: the stop is not the new configuration
// failing, and the file must not be rolled back under the process.
// The fault is queued before the supervisor's select runs, so a select
// that picked at random would roll back about half the rounds.
func TestStopDuringTrialIsNotARollback(t *testing.T) {
	for round := 0; round < 20; round++ {
		path := filepath.Join(t.TempDir(), "agent.yaml")
		if err := os.WriteFile(path, []byte(cfgText("good")), 0o640); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		faulted := make(chan struct{})
		first := make(chan struct{})
		hook := func(msg string) {
			if msg != "apply-config: verifying the new configuration" {
				return
			}
			cancel() // the stop, with the supervisor just short of its select
			select {
			case <-faulted:
			case <-time.After(wait):
				t.Error("the trial's agent never reported its fault")
			}
		}
		sup, err := New(Options{Path: path, Clock: &fakeClock{timers: make(chan chan time.Time, 1)},
			Logger: slog.New(hookHandler{on: hook}),
			Run: func(ctx context.Context, g *Generation) error {
				if !g.Trial {
					close(first)
					<-ctx.Done()
					return nil
				}
				<-ctx.Done()
				g.Observe(agent.Event{Kind: agent.EventFault, Device: "heater",
					Message: `opening device "heater" (relay, GPIO17): context canceled`})
				close(faulted)
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- sup.Run(ctx) }()
		select {
		case <-first:
		case <-time.After(wait):
			t.Fatal("the first generation did not start")
		}
		if err := sup.Apply(context.Background(), Request{Job: "j", Data: []byte(cfgText("slow"))}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Run: %v", round, err)
			}
		case <-time.After(wait):
			t.Fatal("the supervisor did not stop")
		}
		if b, _ := os.ReadFile(path); string(b) != cfgText("slow") {
			t.Fatalf("round %d: the stop rolled the file back:\n%s", round, b)
		}
		if r, err := loadRecord(RecordPath(path)); err != nil || r == nil || r.Phase != PhaseVerifying {
			t.Fatalf("round %d: record after the stop %+v (%v), want verifying: the next start decides", round, r, err)
		}
	}
}
