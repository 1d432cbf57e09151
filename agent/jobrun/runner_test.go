package jobrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/hal/fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// fakeSource is an in-memory Jobs service for one thing.
type fakeSource struct {
	mu        sync.Mutex
	execs     []*fakeExec
	updates   []Update
	offline   bool
	noUpdates bool // updates fail (start-next works)
	startNext int
	next      chan struct{}
	changed   chan struct{}
}

type fakeExec struct {
	id     string
	doc    string
	status Status
}

func newFakeSource(docs ...string) *fakeSource {
	s := &fakeSource{next: make(chan struct{}, 1), changed: make(chan struct{})}
	for i, d := range docs {
		s.execs = append(s.execs, &fakeExec{id: fmt.Sprintf("job%d", i+1), doc: d, status: Queued})
	}
	return s
}

func (s *fakeSource) add(id, doc string) {
	s.mu.Lock()
	s.execs = append(s.execs, &fakeExec{id: id, doc: doc, status: Queued})
	s.mu.Unlock()
	s.signal()
}

func (s *fakeSource) signal() {
	select {
	case s.next <- struct{}{}:
	default:
	}
}

func (s *fakeSource) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *fakeSource) setOffline(b bool) {
	s.mu.Lock()
	s.offline = b
	s.mu.Unlock()
	if !b {
		s.signal()
	}
}

func (s *fakeSource) StartNext(ctx context.Context, step time.Duration) (*Execution, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offline {
		return nil, errors.New("offline")
	}
	s.startNext++
	var pick *fakeExec
	for _, e := range s.execs {
		if e.status == InProgress {
			pick = e
			break
		}
	}
	if pick == nil {
		for _, e := range s.execs {
			if e.status == Queued {
				pick = e
				break
			}
		}
	}
	if pick == nil {
		return nil, nil
	}
	pick.status = InProgress
	s.changedLocked()
	return &Execution{JobID: pick.id, ExecutionNumber: 1, Status: InProgress, Document: json.RawMessage(pick.doc)}, nil
}

func (s *fakeSource) Update(ctx context.Context, u Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.offline || s.noUpdates {
		return errors.New("offline")
	}
	for _, e := range s.execs {
		if e.id != u.JobID {
			continue
		}
		if e.status.Terminal() {
			return fmt.Errorf("%w: TerminalStateReached (%s)", ErrRefused, e.status)
		}
		e.status = u.Status
		s.updates = append(s.updates, u)
		s.changedLocked()
		return nil
	}
	return fmt.Errorf("%w: ResourceNotFound", ErrRefused)
}

func (s *fakeSource) Next() <-chan struct{} { return s.next }

func (s *fakeSource) Describe(ctx context.Context, id string) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status(id), nil
}

// waitUntil blocks until cond holds on the source (checked at every change).
func (s *fakeSource) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(wait)
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("never %s; updates: %+v", what, s.updates)
		}
	}
}

func (s *fakeSource) status(id string) Status {
	for _, e := range s.execs {
		if e.id == id {
			return e.status
		}
	}
	return ""
}

func (s *fakeSource) final(id string) Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.updates) - 1; i >= 0; i-- {
		if s.updates[i].JobID == id {
			return s.updates[i]
		}
	}
	return Update{}
}

// clock adapts the fake HAL clock.
type clock struct{ c *fake.FakeClock }

func (c clock) Now() time.Time { return c.c.Now() }
func (c clock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := c.c.NewTimer(d)
	return t.C(), t.Stop
}

type harness struct {
	t      *testing.T
	src    *fakeSource
	clk    *fake.FakeClock
	path   string
	r      *Runner
	events chan Event
	cancel context.CancelCauseFunc
	done   chan error
}

func newHarness(t *testing.T, src *fakeSource, path string, types map[string]Handler) *harness {
	t.Helper()
	h := &harness{t: t, src: src, clk: fake.NewFakeClock(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)), path: path,
		events: make(chan Event, 256)}
	r, err := New(src, Options{StatePath: path, Thing: "t1", StepTimeout: time.Minute, Clock: clock{h.clk},
		RetryBase: time.Second, RetryMax: 4 * time.Second, Events: func(e Event) { h.events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	for name, hd := range types {
		if err := r.Register(name, hd); err != nil {
			t.Fatal(err)
		}
	}
	h.r = r
	ctx, cancel := context.WithCancelCause(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- r.Run(ctx) }()
	t.Cleanup(func() { h.stop(context.Canceled) })
	return h
}

func (h *harness) stop(cause error) {
	if h.cancel == nil {
		return
	}
	h.cancel(cause)
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		h.t.Fatal("Run did not return")
	}
}

func (h *harness) event(what string, match func(Event) bool) Event {
	h.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e := <-h.events:
			if match(e) {
				return e
			}
		case <-deadline:
			h.t.Fatalf("no event %s", what)
		}
	}
}

// ok is a handler whose jobs succeed at once with {"n": doc's n}.
func ok() Handler {
	return HandlerFunc(func(doc json.RawMessage) (Job, error) {
		var d struct{ N string }
		if err := json.Unmarshal(doc, &d); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return JobFunc(func(ctx context.Context, x *Exec) (Details, error) {
			return Details{"n": d.N}, nil
		}), nil
	})
}

// gate is a handler whose jobs block until released (or ctx ends) and
// count how many run at once.
type gate struct {
	mu      sync.Mutex
	running int
	most    int
	started chan string
	release chan error
}

func newGate() *gate { return &gate{started: make(chan string, 16), release: make(chan error)} }

func (g *gate) Check(doc json.RawMessage) (Job, error) {
	return JobFunc(func(ctx context.Context, x *Exec) (Details, error) {
		g.mu.Lock()
		g.running++
		g.most = max(g.most, g.running)
		g.mu.Unlock()
		defer func() { g.mu.Lock(); g.running--; g.mu.Unlock() }()
		g.started <- x.JobID
		select {
		case err := <-g.release:
			return Details{"done": "yes"}, err
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}), nil
}

func (g *gate) waitStart(t *testing.T) string {
	t.Helper()
	select {
	case id := <-g.started:
		return id
	case <-time.After(wait):
		t.Fatal("no job started")
	}
	return ""
}

func TestRunsJobsInOrderOneAtATime(t *testing.T) {
	src := newFakeSource(`{"type":"gate"}`, `{"type":"gate"}`, `{"type":"gate"}`)
	g := newGate()
	h := newHarness(t, src, filepath.Join(t.TempDir(), StateFile), map[string]Handler{"gate": g})
	for i, want := range []string{"job1", "job2", "job3"} {
		if got := g.waitStart(t); got != want {
			t.Fatalf("start %d: %s, want %s", i, got, want)
		}
		if sn := h.r.Snapshot(); sn.Running == nil || sn.Running.JobID != want || sn.Running.Type != "gate" {
			t.Errorf("snapshot while %s runs: %+v", want, sn.Running)
		}
		var fail error
		if i == 1 {
			fail = errors.New("disk on fire")
		}
		g.release <- fail
	}
	src.waitUntil(t, "all three terminal", func() bool { return src.status("job3").Terminal() })
	if g.most != 1 {
		t.Errorf("%d executions ran at once, want 1", g.most)
	}
	h.event("job3's status sent", func(e Event) bool { return e.Kind == EventSent && e.JobID == "job3" })
	if sn := h.r.Snapshot(); sn.Running != nil || sn.Last == nil || sn.Last.JobID != "job3" || sn.Last.Status != Succeeded || sn.Unsent != 0 {
		t.Errorf("snapshot after the three jobs: %+v", sn)
	}
	if u := src.final("job1"); u.Status != Succeeded || u.Details["done"] != "yes" {
		t.Errorf("job1 final %+v", u)
	}
	if u := src.final("job2"); u.Status != Failed || u.Details["reason"] != "disk on fire" || u.Details["done"] != "yes" {
		t.Errorf("job2 final %+v, want FAILED with reason and the handler's details", u)
	}
	// A terminal status for job N is accepted before job N+1 starts.
	src.mu.Lock()
	defer src.mu.Unlock()
	var order []string
	for _, u := range src.updates {
		order = append(order, u.JobID+":"+string(u.Status))
	}
	if got := strings.Join(order, " "); got != "job1:SUCCEEDED job2:FAILED job3:SUCCEEDED" {
		t.Errorf("updates %s", got)
	}
}

func TestUnknownTypeAndInvalidDocumentAreRejected(t *testing.T) {
	bad := HandlerFunc(func(doc json.RawMessage) (Job, error) {
		return nil, fmt.Errorf("%w: key: want a string", ErrInvalid)
	})
	src := newFakeSource(`{"type":"reboot-the-moon"}`, `{"type":"bad"}`, `[1,2]`, `{"kind":"x"}`, `{"type":"ok","n":"4"}`)
	newHarness(t, src, filepath.Join(t.TempDir(), StateFile), map[string]Handler{"bad": bad, "ok": ok()})
	src.waitUntil(t, "job5 done", func() bool { return src.status("job5").Terminal() })
	for id, want := range map[string]string{
		"job1": `unknown job type "reboot-the-moon"; this agent runs: [bad ok]`,
		"job2": "key: want a string",
		"job3": "not a JSON object",
		"job4": `no "type"`,
	} {
		u := src.final(id)
		if u.Status != Rejected || !strings.Contains(u.Details["reason"], want) {
			t.Errorf("%s: %s %v, want REJECTED with reason containing %q", id, u.Status, u.Details, want)
		}
	}
	if u := src.final("job5"); u.Status != Succeeded || u.Details["n"] != "4" {
		t.Errorf("job5 after the rejections: %+v", u)
	}
}

func TestStatusPersistedAndResentAfterOutage(t *testing.T) {
	src := newFakeSource(`{"type":"gate"}`, `{"type":"gate"}`)
	g := newGate()
	path := filepath.Join(t.TempDir(), StateFile)
	h := newHarness(t, src, path, map[string]Handler{"gate": g})
	g.waitStart(t)
	src.setOffline(true)
	g.release <- nil
	h.event("send failure", func(e Event) bool { return e.Kind == EventError && e.Status == Succeeded })
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"SUCCEEDED"`) {
		t.Fatalf("the terminal status is not on disk while offline: %v\n%s", err, b)
	}
	// While the status is unsent, the next job is not started.
	src.mu.Lock()
	n := src.startNext
	src.mu.Unlock()
	h.clk.Advance(10 * time.Second) // retries (still offline)
	h.event("another send failure", func(e Event) bool { return e.Kind == EventError && e.Status == Succeeded })
	src.setOffline(false) // the connection came back: Next signals
	src.waitUntil(t, "job1 SUCCEEDED sent", func() bool { return src.status("job1") == Succeeded })
	if id := g.waitStart(t); id != "job2" {
		t.Fatalf("next started %s", id)
	}
	src.mu.Lock()
	if src.startNext != n+1 {
		t.Errorf("start-next called %d times during the outage", src.startNext-n-1)
	}
	src.mu.Unlock()
	g.release <- nil
	src.waitUntil(t, "job2 done", func() bool { return src.status("job2") == Succeeded })
}

// resumable is a gate whose jobs resume after a restart.
type resumable struct{ last chan Details }

func (r resumable) Check(doc json.RawMessage) (Job, error) { return r, nil }
func (r resumable) Run(ctx context.Context, x *Exec) (Details, error) {
	if err := x.Progress(ctx, Details{"phase": "rebooting"}); err != nil {
		return nil, err
	}
	<-ctx.Done()
	return nil, context.Cause(ctx)
}
func (r resumable) Resume(ctx context.Context, x *Exec, last Details) (Details, error) {
	r.last <- last
	return Details{"phase": "back"}, nil
}

func TestRestartDuringExecution(t *testing.T) {
	src := newFakeSource(`{"type":"gate"}`, `{"type":"resumable"}`, `{"type":"ok","n":"3"}`)
	g := newGate()
	res := resumable{last: make(chan Details, 1)}
	dir := t.TempDir()
	path := filepath.Join(dir, StateFile)
	types := map[string]Handler{"gate": g, "resumable": res, "ok": ok()}
	h := newHarness(t, src, path, types)
	g.waitStart(t)
	h.stop(errors.New("hard stop"))
	if s := src.status("job1"); s != InProgress {
		t.Fatalf("job1 is %s in the cloud after the stop, want IN_PROGRESS (nothing sent on a stop)", s)
	}

	// Not resumable: FAILED with the reason, then the next one runs.
	h = newHarness(t, src, path, types)
	src.waitUntil(t, "job1 failed", func() bool { return src.status("job1") == Failed })
	if u := src.final("job1"); u.Details["reason"] != ReasonRestarted {
		t.Errorf("job1 final %+v", u)
	}
	h.event("job2 progress", func(e Event) bool { return e.Kind == EventProgress && e.JobID == "job2" })
	src.waitUntil(t, "job2 progress sent", func() bool {
		return len(src.updates) > 0 && src.updates[len(src.updates)-1].Details["phase"] == "rebooting"
	})
	h.stop(errors.New("hard stop"))

	// Resumable: Resume gets the last progress details.
	newHarness(t, src, path, types)
	select {
	case last := <-res.last:
		if last["phase"] != "rebooting" {
			t.Errorf("Resume got %v", last)
		}
	case <-time.After(wait):
		b, _ := os.ReadFile(path)
		t.Fatalf("job2 not resumed; state file:\n%s", b)
	}
	src.waitUntil(t, "job3 done", func() bool { return src.status("job3") == Succeeded })
	if u := src.final("job2"); u.Status != Succeeded || u.Details["phase"] != "back" {
		t.Errorf("job2 after resume %+v", u)
	}
}

func TestStepTimeout(t *testing.T) {
	src := newFakeSource(`{"type":"gate"}`)
	g := newGate()
	h := newHarness(t, src, filepath.Join(t.TempDir(), StateFile), map[string]Handler{"gate": g})
	g.waitStart(t)
	h.clk.Advance(time.Minute)
	src.waitUntil(t, "job1 failed", func() bool { return src.status("job1") == Failed })
	if u := src.final("job1"); !strings.Contains(u.Details["reason"], ErrStepTimeout.Error()) {
		t.Errorf("final %+v, want the step timeout as reason", u)
	}
}

func TestProgressPushesStepDeadline(t *testing.T) {
	src := newFakeSource(`{"type":"slow"}`)
	step := make(chan struct{})
	slow := HandlerFunc(func(doc json.RawMessage) (Job, error) {
		return JobFunc(func(ctx context.Context, x *Exec) (Details, error) {
			for i := 0; i < 3; i++ {
				select {
				case <-step:
				case <-ctx.Done():
					return nil, context.Cause(ctx)
				}
				if err := x.Progress(ctx, Details{"step": fmt.Sprint(i)}); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}), nil
	})
	h := newHarness(t, src, filepath.Join(t.TempDir(), StateFile), map[string]Handler{"slow": slow})
	h.event("start", func(e Event) bool { return e.Kind == EventStarted })
	for i := 0; i < 3; i++ {
		// 50 s per step, 150 s in all: longer than the 1 m step timeout,
		// fine because each step reports progress.
		h.clk.Advance(50 * time.Second)
		step <- struct{}{}
		h.event("progress sent", func(e Event) bool { return e.Kind == EventSent && e.Status == InProgress })
	}
	src.waitUntil(t, "done", func() bool { return src.status("job1").Terminal() })
	if u := src.final("job1"); u.Status != Succeeded {
		t.Errorf("final %+v", u)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	for _, u := range src.updates {
		if u.Status == InProgress && u.StepTimeout != time.Minute {
			t.Errorf("progress update without the step timeout: %+v", u)
		}
	}
}

func TestCancelledInTheCloudStopsTheHandler(t *testing.T) {
	src := newFakeSource(`{"type":"prog"}`)
	prog := HandlerFunc(func(doc json.RawMessage) (Job, error) {
		return JobFunc(func(ctx context.Context, x *Exec) (Details, error) {
			if err := x.Progress(ctx, Details{"phase": "1"}); err != nil {
				return nil, err
			}
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}), nil
	})
	h := newHarness(t, src, filepath.Join(t.TempDir(), StateFile), map[string]Handler{"prog": prog})
	h.event("start", func(e Event) bool { return e.Kind == EventStarted })
	h.event("progress sent", func(e Event) bool { return e.Kind == EventSent && e.Status == InProgress })
	src.mu.Lock()
	src.execs[0].status = Canceled
	src.mu.Unlock()
	src.signal() // notify-next: the next execution changed
	e := h.event("finished", func(e Event) bool { return e.Kind == EventFinished })
	if e.Status != Failed || !strings.Contains(e.Message, ErrCanceled.Error()) {
		t.Errorf("finish %+v, want FAILED because of the cancellation", e)
	}
	h.event("final status dropped", func(e Event) bool { return e.Kind == EventDropped && e.Status == Failed })
}

func TestCorruptStateFileIsNotFatal(t *testing.T) {
	path := filepath.Join(t.TempDir(), StateFile)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := newFakeSource(`{"type":"ok","n":"1"}`)
	h := newHarness(t, src, path, map[string]Handler{"ok": ok()})
	h.event("state error", func(e Event) bool { return e.Kind == EventError && strings.Contains(e.Message, "corrupt") })
	src.waitUntil(t, "job1 done", func() bool { return src.status("job1") == Succeeded })
}

// A terminal status not yet sent when the agent stops is sent by the next
// start, before anything else is started.
func TestUnsentStatusSentAfterRestart(t *testing.T) {
	src := newFakeSource(`{"type":"ok","n":"1"}`, `{"type":"ok","n":"2"}`)
	path := filepath.Join(t.TempDir(), StateFile)
	src.setOffline(true)
	src.mu.Lock()
	src.execs[0].status = InProgress // started just before the outage
	src.mu.Unlock()
	// Run job1 from disk: the state a previous run left.
	doc := stateDoc{Format: stateFormat, Thing: "t1", Current: &current{JobID: "job1", Type: "ok", Document: json.RawMessage(`{"type":"ok","n":"1"}`)}}
	b, _ := json.Marshal(doc)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, src, path, map[string]Handler{"ok": ok()})
	h.event("job1 failed locally", func(e Event) bool { return e.Kind == EventFinished && e.JobID == "job1" })
	h.stop(errors.New("hard stop"))
	b, _ = os.ReadFile(path)
	if !strings.Contains(string(b), `"FAILED"`) {
		t.Fatalf("the unsent FAILED is not on disk:\n%s", b)
	}
	src.setOffline(false)
	newHarness(t, src, path, map[string]Handler{"ok": ok()})
	src.waitUntil(t, "job2 done", func() bool { return src.status("job2") == Succeeded })
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.updates) != 2 || src.updates[0].JobID != "job1" || src.updates[0].Status != Failed || src.updates[0].Details["reason"] != ReasonRestarted {
		t.Errorf("updates after the restart: %+v; want job1's FAILED first", src.updates)
	}
}

// Delivered returns once the service has the progress, and not before.
func TestDelivered(t *testing.T) {
	src := newFakeSource(`{"type":"careful"}`)
	src.noUpdates = true
	delivered := make(chan error, 1)
	// The job holds until the service's state has been checked: once it
	// returns, SUCCEEDED would replace the IN_PROGRESS under test.
	release := make(chan struct{})
	defer close(release)
	careful := HandlerFunc(func(doc json.RawMessage) (Job, error) {
		return JobFunc(func(ctx context.Context, x *Exec) (Details, error) {
			if err := x.Progress(ctx, Details{"phase": "requested"}); err != nil {
				return nil, err
			}
			err := x.Delivered(ctx)
			delivered <- err
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, err
		}), nil
	})
	h := newHarness(t, src, filepath.Join(t.TempDir(), StateFile), map[string]Handler{"careful": careful})
	h.event("send failed", func(e Event) bool { return e.Kind == EventError && e.Status == InProgress })
	select {
	case err := <-delivered:
		t.Fatalf("Delivered returned %v while the update was not accepted", err)
	default:
	}
	src.mu.Lock()
	src.noUpdates = false
	src.mu.Unlock()
	src.signal()
	select {
	case err := <-delivered:
		if err != nil {
			t.Fatal(err)
		}
		if u := src.final("job1"); u.Status != InProgress || u.Details["phase"] != "requested" {
			t.Errorf("the service had %+v when Delivered returned", u)
		}
	case <-time.After(wait):
		t.Fatal("Delivered did not return once online")
	}
}
