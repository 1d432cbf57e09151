package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/agent/jobrun"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/jobs"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// changedPoll bounds how long a job waiting on a shadow goes without looking
// again: the mirror also moves when our own reports are accepted, which
// emits no event.
const changedPoll = 50 * time.Millisecond

// jobSource is the Jobs service over the agent's connection, as the runner
// sees it.
type jobSource struct {
	c    *jobs.Client
	next chan struct{}
}

func newJobSource() *jobSource { return &jobSource{next: make(chan struct{}, 1)} }

// notify is the jobs client's notify-next callback (also called after each
// reconnect with the service's current next execution).
func (s *jobSource) notify(jobs.NextJob) {
	select {
	case s.next <- struct{}{}:
	default:
	}
}

func (s *jobSource) Next() <-chan struct{} { return s.next }

func (s *jobSource) StartNext(ctx context.Context, step time.Duration) (*jobrun.Execution, error) {
	e, err := s.c.StartNext(ctx, jobs.StartNextOptions{StepTimeoutInMinutes: minutes(step)})
	if err != nil || e == nil {
		return nil, err
	}
	return &jobrun.Execution{JobID: e.JobID, ExecutionNumber: e.ExecutionNumber, Status: jobrun.Status(e.Status),
		Document: e.JobDocument, Details: e.StatusDetails}, nil
}

func (s *jobSource) Update(ctx context.Context, u jobrun.Update) error {
	_, err := s.c.Update(ctx, u.JobID, jobs.Update{Status: jobs.Status(u.Status), StatusDetails: u.Details,
		ExecutionNumber: u.ExecutionNumber, StepTimeoutInMinutes: minutes(u.StepTimeout)})
	var rej *jobs.RejectedError
	if errors.As(err, &rej) && !rej.Temporary() {
		return fmt.Errorf("%w: %w", jobrun.ErrRefused, err)
	}
	return err
}

func (s *jobSource) Describe(ctx context.Context, jobID string) (jobrun.Status, error) {
	e, err := s.c.Describe(ctx, jobID, jobs.DescribeOptions{OmitJobDocument: true})
	if err != nil {
		return "", err
	}
	return jobrun.Status(e.Status), nil
}

// minutes rounds a step timeout up to AWS's whole minutes (0 stays 0).
func minutes(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Minute - 1) / time.Minute)
}

// jobHost is what job handlers get of the agent: its shadows, changed
// through desired updates exactly as a cloud application would.
type jobHost struct {
	r     *runner // only its shadows (fixed for the run) and agent are used
	thing string  // r.cfg changes on reload, on the loop goroutine
}

func (h jobHost) Thing() string { return h.thing }

func (h jobHost) shadow(name string) (*shadowsync.Shadow, error) {
	sh, ok := h.r.shadows[name]
	if !ok {
		names := make([]string, 0, len(h.r.shadows))
		for _, n := range sortedKeys(h.r.shadows) {
			if n == "" {
				n = `"" (classic)`
			}
			names = append(names, n)
		}
		return nil, fmt.Errorf("shadow %q is not one the agent syncs; configured: %s", name, strings.Join(names, ", "))
	}
	return sh, nil
}

func (h jobHost) Desire(ctx context.Context, shadow string, patch map[string]any) (int64, error) {
	sh, err := h.shadow(shadow)
	if err != nil {
		return 0, err
	}
	acc, err := sh.Update(ctx, shadowsync.UpdateRequest{Desired: patch})
	if err != nil {
		return 0, err
	}
	return acc.Version, nil
}

func (h jobHost) Shadow(name string) (jobrun.ShadowView, bool) {
	sh, err := h.shadow(name)
	if err != nil {
		return jobrun.ShadowView{}, false
	}
	m := sh.Mirror()
	return jobrun.ShadowView{Known: m.Known, Version: m.Version, Desired: m.Desired, Reported: m.Reported}, true
}

// Changed closes at the agent's next event, or after changedPoll.
func (h jobHost) Changed() <-chan struct{} {
	out := make(chan struct{})
	var once sync.Once
	fire := func() { once.Do(func() { close(out) }) }
	a := h.r.a
	a.evMu.Lock()
	a.evWaiters = append(a.evWaiters, fire)
	a.evMu.Unlock()
	time.AfterFunc(changedPoll, fire)
	return out
}

// startJobs connects the Jobs client and starts the runner when the
// configuration has a jobs: section. The runner stops with ctx (its cause
// reaches a running job, which stays IN_PROGRESS on disk).
func (r *runner) startJobs(ctx context.Context) error {
	jc := r.cfg.Jobs
	if jc == nil || !jc.Enabled {
		return nil
	}
	a := r.a
	src := newJobSource()
	opts := a.deps.Jobs
	if opts.Logger == nil {
		opts.Logger = a.log
	}
	opts.OnNotifyNext = src.notify
	c, err := jobs.NewIOT(ctx, r.ic, r.cfg.Thing, opts)
	if err != nil {
		return fmt.Errorf("agent: jobs client: %w", err)
	}
	src.c = c
	r.jobsClient = c
	run, err := jobrun.New(src, jobrun.Options{
		StatePath:   filepath.Join(stateDir(r.cfg), jobrun.StateFile),
		Thing:       r.cfg.Thing,
		StepTimeout: jc.StepTimeout,
		Host:        jobHost{r: r, thing: r.cfg.Thing},
		Clock:       a.clock,
		Log:         a.log.With("component", "jobs"),
		Events:      r.jobEvent,
	})
	if err != nil {
		return fmt.Errorf("agent: jobs: %w", err)
	}
	for name, h := range jobTypes(jc, a.deps.JobTypes) {
		if err := run.Register(name, h); err != nil {
			return fmt.Errorf("agent: jobs: %w", err)
		}
	}
	r.jobRunner = run
	jctx, cancel := context.WithCancelCause(ctx)
	r.jobsDone, r.jobsCancel = make(chan struct{}), cancel
	go func() {
		defer close(r.jobsDone)
		// Jobs act through the shadows: start (and resume an interrupted
		// job) once the agent has converged with them. An agent without
		// shadows never converges; its jobs (handlers, downloads) start at
		// once and wait for the connection like any request.
		if len(r.shadows) > 0 {
			select {
			case <-a.ready:
			case <-jctx.Done():
				return
			}
		}
		if err := run.Run(jctx); err != nil {
			a.log.Error("job runner stopped", "err", err)
		}
	}()
	a.log.Info("running jobs", "types", run.Types(), "step_timeout", jc.StepTimeout)
	return nil
}

// jobTypes are the built-in job types the configuration enables, plus the
// caller's (Deps.JobTypes, which win).
func jobTypes(jc *config.Jobs, extra map[string]jobrun.Handler) map[string]jobrun.Handler {
	t := map[string]jobrun.Handler{
		"set-desired": jobrun.SetDesired{},
		"pulse":       jobrun.Pulse{},
	}
	if jc.Handlers.Dir != "" {
		t["run-handler"] = jobrun.RunHandler{Opts: jobrun.RunHandlerOptions{Dir: jc.Handlers.Dir, User: jc.Handlers.User,
			Timeout: jc.Handlers.Timeout, MaxTimeout: jc.Handlers.MaxTimeout}}
	}
	if jc.Downloads.Dir != "" {
		t["download-file"] = jobrun.Download{Opts: jobrun.DownloadOptions{Dir: jc.Downloads.Dir, MaxSize: jc.Downloads.MaxSize,
			AllowHTTP: jc.Downloads.AllowHTTP}}
	}
	for k, h := range extra {
		t[k] = h
	}
	return t
}

// stopJobs waits for the runner (its context is already done) and closes
// the Jobs client, before the connection closes.
func (r *runner) stopJobs(ctx context.Context) {
	if r.jobsDone != nil {
		r.jobsCancel(context.Canceled) // a no-op when Run's context (and its cause) ended first
		<-r.jobsDone
	}
	if r.jobsClient != nil {
		_ = r.jobsClient.Close(ctx)
	}
}

// jobEvent turns the runner's events into agent events.
func (r *runner) jobEvent(e jobrun.Event) {
	kind := map[jobrun.EventKind]EventKind{
		jobrun.EventStarted:  EventJobStarted,
		jobrun.EventProgress: EventJobProgress,
		jobrun.EventFinished: EventJobFinished,
		jobrun.EventSent:     EventJobSent,
		jobrun.EventDropped:  EventJobDropped,
		jobrun.EventError:    EventJobError,
	}[e.Kind]
	if kind == "" {
		return
	}
	var v map[string]string
	if e.Details != nil {
		v = map[string]string(e.Details)
	}
	msg := e.Message
	if msg == "" && e.Resumed {
		msg = "resumed after a restart"
	}
	r.a.emit(Event{Kind: kind, Key: e.JobID, Property: e.Type, Status: string(e.Status), Value: v, Message: msg})
}

func stateDir(cfg *config.Config) string {
	if cfg.StateDir == "" {
		return config.DefaultStateDir
	}
	return cfg.StateDir
}
