package jobrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Options configure a Runner. StatePath is required.
type Options struct {
	// StatePath is the file the runner persists executions and unsent
	// statuses in (the agent: <state_dir>/jobs.json).
	StatePath string
	// Thing is written into the state file and checked when it is read.
	Thing string
	// StepTimeout is sent with start-next and every IN_PROGRESS update, and
	// bounds a handler between two Progress calls (default 10m; AWS counts
	// whole minutes, 1m–7d).
	StepTimeout time.Duration
	// Host is the agent, handed to every Job.
	Host Host
	// Clock defaults to real time; Log to discard.
	Clock Clock
	Log   *slog.Logger
	// Events observes starts, progress, finishes and dropped updates. It is
	// called from the runner's goroutines and must not block.
	Events func(Event)
	// RetryBase and RetryMax bound the wait between two attempts to send a
	// status or start the next execution (default 1s, 1m); a Source.Next
	// signal (the connection came back) retries at once.
	RetryBase, RetryMax time.Duration
	// RequestTimeout bounds one StartNext or Update (default 15s).
	RequestTimeout time.Duration
}

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	// EventStarted: an execution began (Resumed: it continues after a restart).
	EventStarted EventKind = "job_started"
	// EventProgress: a handler reported progress (Details).
	EventProgress EventKind = "job_progress"
	// EventFinished: an execution ended locally with Status and Details
	// (the status is persisted and being sent).
	EventFinished EventKind = "job_finished"
	// EventSent: the service accepted Status for the execution.
	EventSent EventKind = "job_sent"
	// EventDropped: the service refused Status for good (Message says why).
	EventDropped EventKind = "job_dropped"
	// EventError: starting or updating failed and is retried (Message).
	EventError EventKind = "job_error"
)

// Event is one thing the runner did.
type Event struct {
	Kind    EventKind
	JobID   string
	Type    string
	Status  Status
	Details Details
	Resumed bool
	Message string
}

// Runner runs job executions one at a time. Create it with New, register
// the job types, then Run it (once).
type Runner struct {
	src   Source
	opts  Options
	log   *slog.Logger
	clock Clock
	types map[string]Handler

	mu      sync.Mutex // guards st and its file, now and last
	st      stateDoc
	kick    chan struct{} // something was added to the outbox
	running bool
	now     *JobStatus       // the execution being run
	last    *JobStatus       // the last one that ended on the device
	sent    chan struct{}    // closed and replaced when the outbox shrinks
	refused map[string]error // executions whose update the service refused
}

// JobStatus describes an execution for Snapshot.
type JobStatus struct {
	JobID   string    `json:"job_id"`
	Type    string    `json:"type"`
	Status  Status    `json:"status"`
	Since   time.Time `json:"since"` // started, or ended
	Resumed bool      `json:"resumed,omitempty"`
	Details Details   `json:"details,omitempty"`
}

// Snapshot is what the runner is doing, for `agent status`.
type Snapshot struct {
	// Running is the execution being run (nil: none).
	Running *JobStatus `json:"running,omitempty"`
	// Last is the last execution that ended on the device.
	Last *JobStatus `json:"last,omitempty"`
	// Unsent counts statuses persisted but not yet accepted.
	Unsent int `json:"unsent"`
	// Types are the registered job types.
	Types []string `json:"types"`
}

// Snapshot returns what the runner is doing. Safe from any goroutine.
func (r *Runner) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{Unsent: len(r.st.Outbox)}
	if r.now != nil {
		n := *r.now
		if c := r.st.Current; c != nil && c.JobID == n.JobID {
			n.Details = c.Details
		}
		s.Running = &n
	}
	if r.last != nil {
		l := *r.last
		s.Last = &l
	}
	for k := range r.types {
		s.Types = append(s.Types, k)
	}
	sort.Strings(s.Types)
	return s
}

// ended records the last execution that ended on the device.
func (r *Runner) ended(id, typ string, st Status, d Details) {
	r.mu.Lock()
	r.now = nil
	r.last = &JobStatus{JobID: id, Type: typ, Status: st, Since: r.clock.Now(), Details: d}
	r.mu.Unlock()
}

// New returns a runner over src.
func New(src Source, opts Options) (*Runner, error) {
	if src == nil {
		return nil, errors.New("jobrun: no jobs source")
	}
	if opts.StatePath == "" {
		return nil, errors.New("jobrun: no state path")
	}
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = 10 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Minute
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 15 * time.Second
	}
	return &Runner{src: src, opts: opts, log: opts.Log, clock: opts.Clock, types: map[string]Handler{},
		kick: make(chan struct{}, 1), sent: make(chan struct{}), refused: map[string]error{}}, nil
}

// Register adds job type name. It fails for an empty or duplicate name, or
// once Run has started.
func (r *Runner) Register(name string, h Handler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return fmt.Errorf("jobrun: register %q: the runner is already running", name)
	}
	if name == "" || h == nil {
		return errors.New("jobrun: register: empty type name or nil handler")
	}
	if _, dup := r.types[name]; dup {
		return fmt.Errorf("jobrun: job type %q registered twice", name)
	}
	r.types[name] = h
	return nil
}

// Types lists the registered job types, sorted.
func (r *Runner) Types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.types))
	for k := range r.types {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (r *Runner) emit(e Event) {
	if r.opts.Events != nil {
		r.opts.Events(e)
	}
}

// active is the execution being run by the loop.
type active struct {
	x      *Exec
	typ    string
	cancel context.CancelCauseFunc
	done   chan outcome
}

type outcome struct {
	details Details
	err     error
}

// Run runs executions until ctx is done. An execution running then is
// cancelled with ctx's cause and left IN_PROGRESS on disk, for the next
// start to resume or fail. Run returns nil after ctx is done, or an error
// when the state file cannot be written at start.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("jobrun: already running")
	}
	r.running = true
	st, err := loadState(r.opts.StatePath, r.opts.Thing)
	if err != nil {
		r.log.Warn("jobs state file unusable; starting without it", "err", err)
		r.emit(Event{Kind: EventError, Message: err.Error()})
	}
	r.st = st
	r.mu.Unlock()

	var cur *active
	if c := st.Current; c != nil {
		cur = r.restarted(ctx, *c)
	}

	failures := 0
	wantNext := true
	var retry <-chan time.Time
	stopRetry := func() bool { return false }
	defer func() { stopRetry() }()
	var step <-chan time.Time
	stopStep := func() bool { return false }
	defer func() { stopStep() }()
	stepAt := time.Time{}

	for {
		// Send what is waiting, then start the next execution when idle.
		ok := r.flush(ctx, cur)
		if ok && cur == nil && wantNext && ctx.Err() == nil {
			x, err := r.startNext(ctx)
			switch {
			case err != nil:
				ok = false
			case x == nil:
				wantNext = false
			default:
				cur = r.begin(ctx, x)
			}
		}
		if ok {
			failures = 0
		} else if retry == nil && ctx.Err() == nil {
			failures++
			retry, stopRetry = r.clock.NewTimer(r.backoff(failures))
		}
		if cur != nil {
			if d := cur.x.Deadline(); !d.Equal(stepAt) {
				stopStep()
				stepAt = d
				step, stopStep = r.clock.NewTimer(d.Sub(r.clock.Now()))
			}
		} else if step != nil {
			stopStep()
			step, stepAt = nil, time.Time{}
		}
		var done <-chan outcome
		if cur != nil {
			done = cur.done
		}
		select {
		case <-ctx.Done():
			r.leave(ctx, cur, nil)
			return nil
		case <-r.src.Next():
			wantNext = true
			stopRetry()
			retry = nil
			if cur != nil {
				r.checkCancelled(ctx, cur)
			}
		case <-r.kick:
		case <-retry:
			retry = nil
		case <-step:
			step, stepAt = nil, time.Time{}
			if cur != nil && !r.clock.Now().Before(cur.x.Deadline()) {
				cur.cancel(ErrStepTimeout)
			}
		case o := <-done:
			if ctx.Err() != nil {
				// The job ended because the agent is stopping: that is not
				// its outcome.
				r.leave(ctx, cur, &o)
				return nil
			}
			r.finish(cur, o)
			cur = nil
			wantNext = true
		}
	}
}

// checkCancelled stops the running execution when the service has ended
// it (cancelled, removed, timed out).
func (r *Runner) checkCancelled(ctx context.Context, cur *active) {
	d, ok := r.src.(Describer)
	if !ok {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
	st, err := d.Describe(dctx, cur.x.JobID)
	cancel()
	if err != nil || !st.Terminal() {
		return
	}
	r.log.Warn("job ended in the cloud; stopping it", "job", cur.x.JobID, "status", st)
	cur.cancel(fmt.Errorf("%w (%s)", ErrCanceled, st))
}

// waitSent blocks until no status of job id is waiting to be sent: nil
// once the service accepted them, an error wrapping ErrCanceled when it
// refused one, ctx's cause when ctx ends first.
func (r *Runner) waitSent(ctx context.Context, id string) error {
	for {
		r.mu.Lock()
		if err, ok := r.refused[id]; ok {
			r.mu.Unlock()
			return fmt.Errorf("%w: %v", ErrCanceled, err)
		}
		pending := false
		for _, u := range r.st.Outbox {
			if u.JobID == id {
				pending = true
				break
			}
		}
		ch := r.sent
		r.mu.Unlock()
		if !pending {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// leave stops the running execution (if any) because the agent stops: it
// stays IN_PROGRESS on disk, for the next start to resume or fail.
func (r *Runner) leave(ctx context.Context, cur *active, o *outcome) {
	if cur == nil {
		return
	}
	cur.cancel(context.Cause(ctx))
	if o == nil {
		<-cur.done
	}
	r.log.Info("job left in progress: the agent is stopping", "job", cur.x.JobID)
}

func (r *Runner) backoff(n int) time.Duration {
	d := r.opts.RetryBase
	for i := 1; i < n && d < r.opts.RetryMax; i++ {
		d *= 2
	}
	return min(d, r.opts.RetryMax)
}

// startNext asks for the next execution; REJECTED ones (unknown type,
// invalid document) are handled here and nil returned with a wish for the
// next.
func (r *Runner) startNext(ctx context.Context) (*Execution, error) {
	sctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
	defer cancel()
	x, err := r.src.StartNext(sctx, r.opts.StepTimeout)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("starting the next job failed; retrying", "err", err)
			r.emit(Event{Kind: EventError, Message: "start-next: " + err.Error()})
		}
		return nil, err
	}
	return x, nil
}

// docType reads the document's "type".
func docType(doc json.RawMessage) (string, error) {
	var d struct {
		Type *string `json:"type"`
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&d); err != nil {
		return "", fmt.Errorf("%w: the job document is not a JSON object: %v", ErrInvalid, err)
	}
	if d.Type == nil || *d.Type == "" {
		return "", fmt.Errorf("%w: the job document has no \"type\"", ErrInvalid)
	}
	return *d.Type, nil
}

// check finds the handler of doc and validates it.
func (r *Runner) check(doc json.RawMessage) (string, Job, error) {
	t, err := docType(doc)
	if err != nil {
		return "", nil, err
	}
	r.mu.Lock()
	h, ok := r.types[t]
	r.mu.Unlock()
	if !ok {
		return t, nil, fmt.Errorf("%w %q; this agent runs: %v", ErrUnknownType, t, r.Types())
	}
	j, err := h.Check(doc)
	if err != nil {
		return t, nil, err
	}
	return t, j, nil
}

// begin validates a started execution and runs it, or rejects it.
func (r *Runner) begin(ctx context.Context, e *Execution) *active {
	t, job, err := r.check(e.Document)
	if err != nil {
		d := Details{"reason": err.Error()}
		if t != "" {
			d["type"] = t
		}
		d = d.Clean()
		r.log.Warn("job rejected", "job", e.JobID, "type", t, "reason", err)
		r.enqueue(nil, Update{JobID: e.JobID, ExecutionNumber: e.ExecutionNumber, Status: Rejected, Details: d})
		r.ended(e.JobID, t, Rejected, d)
		r.emit(Event{Kind: EventFinished, JobID: e.JobID, Type: t, Status: Rejected, Details: d, Message: err.Error()})
		return nil
	}
	c := current{JobID: e.JobID, ExecutionNumber: e.ExecutionNumber, Type: t, Document: e.Document, StartedAt: r.clock.Now()}
	r.mu.Lock()
	r.st.Current = &c
	err = r.saveLocked()
	r.mu.Unlock()
	if err != nil {
		// Running a job whose progress cannot survive a crash would break
		// the promise that statuses are on disk before they are sent.
		r.log.Error("cannot persist the job; not running it", "job", e.JobID, "err", err)
		r.emit(Event{Kind: EventError, JobID: e.JobID, Type: t, Message: err.Error()})
		d := Details{"reason": "agent cannot persist job state: " + err.Error()}.Clean()
		r.mu.Lock()
		r.st.Current = nil
		r.st.Outbox = appendUpdate(r.st.Outbox, Update{JobID: e.JobID, ExecutionNumber: e.ExecutionNumber, Status: Failed, Details: d})
		r.mu.Unlock()
		return nil
	}
	return r.run(ctx, c, job, false, nil)
}

// restarted handles the execution found on disk at start: resume it when
// its type can, else fail it.
func (r *Runner) restarted(ctx context.Context, c current) *active {
	_, job, err := r.check(c.Document)
	if err == nil {
		if _, ok := job.(Resumer); ok {
			r.log.Info("resuming the job interrupted by the restart", "job", c.JobID, "type", c.Type)
			return r.run(ctx, c, job, true, c.Details)
		}
	}
	d := c.Details.Merge(Details{"reason": ReasonRestarted}).Clean()
	r.log.Warn("job was running when the agent stopped; failing it", "job", c.JobID, "type", c.Type)
	r.enqueue(func(st *stateDoc) { st.Current = nil }, Update{JobID: c.JobID, ExecutionNumber: c.ExecutionNumber, Status: Failed, Details: d})
	r.ended(c.JobID, c.Type, Failed, d)
	r.emit(Event{Kind: EventFinished, JobID: c.JobID, Type: c.Type, Status: Failed, Details: d, Message: ReasonRestarted})
	return nil
}

// run starts job in its own goroutine; the loop owns it through active.
func (r *Runner) run(ctx context.Context, c current, job Job, resumed bool, last Details) *active {
	jctx, cancel := context.WithCancelCause(ctx)
	x := &Exec{JobID: c.JobID, ExecutionNumber: c.ExecutionNumber, Document: c.Document, Host: r.opts.Host,
		Log: r.log.With("job", c.JobID, "type", c.Type), Clock: r.clock, Resumed: resumed,
		deadline: r.clock.Now().Add(r.opts.StepTimeout)}
	x.waitSent = func(wctx context.Context) error { return r.waitSent(wctx, c.JobID) }
	x.progress = func(pctx context.Context, d Details) error {
		d = d.Clean()
		delete(d, "reason")
		x.mu.Lock()
		x.deadline = r.clock.Now().Add(r.opts.StepTimeout)
		x.mu.Unlock()
		err := r.enqueue(func(st *stateDoc) {
			if st.Current != nil && st.Current.JobID == c.JobID {
				st.Current.Details = d
			}
		}, Update{JobID: c.JobID, ExecutionNumber: c.ExecutionNumber, Status: InProgress, Details: d, StepTimeout: r.opts.StepTimeout})
		r.emit(Event{Kind: EventProgress, JobID: c.JobID, Type: c.Type, Status: InProgress, Details: d})
		return err
	}
	a := &active{x: x, typ: c.Type, cancel: cancel, done: make(chan outcome, 1)}
	r.mu.Lock()
	r.now = &JobStatus{JobID: c.JobID, Type: c.Type, Status: InProgress, Since: r.clock.Now(), Resumed: resumed}
	r.refused = map[string]error{} // only the running execution asks (Delivered)
	r.mu.Unlock()
	r.emit(Event{Kind: EventStarted, JobID: c.JobID, Type: c.Type, Status: InProgress, Resumed: resumed})
	r.log.Info("job started", "job", c.JobID, "type", c.Type, "resumed", resumed)
	go func() {
		var o outcome
		defer func() {
			if p := recover(); p != nil {
				o = outcome{err: fmt.Errorf("job handler panicked: %v", p)}
			}
			a.done <- o
		}()
		if rs, ok := job.(Resumer); ok && resumed {
			o.details, o.err = rs.Resume(jctx, x, last)
		} else {
			o.details, o.err = job.Run(jctx, x)
		}
	}()
	return a
}

// finish records an execution's terminal status.
func (r *Runner) finish(a *active, o outcome) {
	a.cancel(nil)
	status := Succeeded
	d := o.details.Clean()
	if d == nil {
		d = Details{}
	}
	if o.err != nil {
		status = Failed
		d = d.Merge(Details{"reason": o.err.Error()}).Clean()
	}
	r.enqueue(func(st *stateDoc) { st.Current = nil }, Update{JobID: a.x.JobID, ExecutionNumber: a.x.ExecutionNumber, Status: status, Details: d})
	r.ended(a.x.JobID, a.typ, status, d)
	r.log.Info("job finished", "job", a.x.JobID, "type", a.typ, "status", status, "details", d.String())
	msg := ""
	if o.err != nil {
		msg = o.err.Error()
	}
	r.emit(Event{Kind: EventFinished, JobID: a.x.JobID, Type: a.typ, Status: status, Details: d, Message: msg, Resumed: a.x.Resumed})
}

// enqueue applies change to the state, adds u to the outbox, persists, and
// kicks the loop. The status is on disk before it is ever sent; a failure
// to persist is returned (and the update still sent from memory).
func (r *Runner) enqueue(change func(*stateDoc), u Update) error {
	r.mu.Lock()
	if change != nil {
		change(&r.st)
	}
	r.st.Outbox = appendUpdate(r.st.Outbox, u)
	err := r.saveLocked()
	r.mu.Unlock()
	if err != nil {
		r.log.Error("cannot persist job status; sending it from memory (a restart would lose it)", "job", u.JobID, "err", err)
		r.emit(Event{Kind: EventError, JobID: u.JobID, Message: err.Error()})
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
	return err
}

// appendUpdate adds u, replacing earlier non-terminal updates of the same
// execution (a newer status carries everything they said).
func appendUpdate(q []Update, u Update) []Update {
	out := q[:0:0]
	for _, o := range q {
		if o.JobID == u.JobID && !o.Status.Terminal() {
			continue
		}
		out = append(out, o)
	}
	return append(out, u)
}

// flush sends the outbox in order. It returns false when an update must be
// retried later.
func (r *Runner) flush(ctx context.Context, cur *active) bool {
	for ctx.Err() == nil {
		r.mu.Lock()
		if len(r.st.Outbox) == 0 {
			r.mu.Unlock()
			return true
		}
		u := r.st.Outbox[0]
		r.mu.Unlock()
		uctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
		err := r.src.Update(uctx, u)
		cancel()
		refused := errors.Is(err, ErrRefused)
		if err != nil && !refused {
			if ctx.Err() == nil {
				r.log.Warn("job status not sent; retrying", "job", u.JobID, "status", u.Status, "err", err)
				r.emit(Event{Kind: EventError, JobID: u.JobID, Status: u.Status, Message: err.Error()})
			}
			return false
		}
		r.mu.Lock()
		// Progress may have replaced the head while it was being sent.
		if len(r.st.Outbox) > 0 && sameUpdate(r.st.Outbox[0], u) {
			r.st.Outbox = r.st.Outbox[1:]
			if err := r.saveLocked(); err != nil {
				r.log.Error("cannot persist the jobs outbox", "err", err)
			}
		}
		if refused {
			r.refused[u.JobID] = err
		}
		close(r.sent)
		r.sent = make(chan struct{})
		r.mu.Unlock()
		if refused {
			r.log.Warn("job status refused by the service; dropped", "job", u.JobID, "status", u.Status, "err", err)
			r.emit(Event{Kind: EventDropped, JobID: u.JobID, Status: u.Status, Details: u.Details, Message: err.Error()})
			if cur != nil && cur.x.JobID == u.JobID {
				cur.cancel(fmt.Errorf("%w: %v", ErrCanceled, err))
			}
			continue
		}
		r.emit(Event{Kind: EventSent, JobID: u.JobID, Status: u.Status, Details: u.Details})
	}
	return false
}

func sameUpdate(a, b Update) bool {
	return a.JobID == b.JobID && a.Status == b.Status && a.Details.String() == b.Details.String()
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
