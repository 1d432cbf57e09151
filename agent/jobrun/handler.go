package jobrun

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Handler is one job type (the job document's "type"). Register it with
// Runner.Register before Run.
//
// The contract, which J3's apply-config and reboot types rely on:
//
//   - Check parses and validates the whole job document (the JSON object,
//     "type" included). It does no I/O. An error makes the execution
//     REJECTED with statusDetails {"reason": err.Error()}; wrap ErrInvalid
//     for clarity.
//   - The returned Job's Run executes it. A nil error → SUCCEEDED, an error
//     → FAILED with statusDetails "reason" = the error text; the Details
//     returned are merged into the terminal statusDetails either way.
//   - Run's ctx ends at the step deadline (cause ErrStepTimeout; each
//     Exec.Progress pushes the deadline out by the step timeout), when the
//     job was cancelled in the cloud (cause ErrCanceled) or when the agent
//     stops (the agent's own cause, e.g. its hard stop). Run must return
//     promptly once ctx is done.
//   - A Job that implements Resumer is resumable: when the agent restarts
//     and finds the execution IN_PROGRESS on disk, Resume is called instead
//     of failing it. Any other type ends FAILED with reason
//     ReasonRestarted.
type Handler interface {
	Check(doc json.RawMessage) (Job, error)
}

// Job is a validated job document, ready to run.
type Job interface {
	Run(ctx context.Context, x *Exec) (Details, error)
}

// Resumer is implemented by jobs that can carry on after the agent was
// restarted during their execution. last is the statusDetails of the last
// IN_PROGRESS update persisted (Exec.Progress), so a job can leave itself a
// note ("phase": "rebooting") before a restart.
type Resumer interface {
	Resume(ctx context.Context, x *Exec, last Details) (Details, error)
}

// HandlerFunc adapts a Check function to Handler.
type HandlerFunc func(doc json.RawMessage) (Job, error)

// Check calls f.
func (f HandlerFunc) Check(doc json.RawMessage) (Job, error) { return f(doc) }

// JobFunc adapts a function to Job.
type JobFunc func(ctx context.Context, x *Exec) (Details, error)

// Run calls f.
func (f JobFunc) Run(ctx context.Context, x *Exec) (Details, error) { return f(ctx, x) }

// ReasonRestarted is the reason of an execution that was running when the
// agent stopped and whose type is not resumable.
const ReasonRestarted = "agent restarted during execution"

// Errors a handler or the runner acts on.
var (
	// ErrInvalid marks a job document that cannot run (REJECTED).
	ErrInvalid = errors.New("invalid job document")
	// ErrUnknownType: the document's type has no handler (REJECTED).
	ErrUnknownType = errors.New("unknown job type")
	// ErrStepTimeout is the cause of a Run context whose step deadline
	// passed without a Progress call.
	ErrStepTimeout = errors.New("step timeout reached")
	// ErrCanceled is the cause of a Run context whose execution the service
	// no longer accepts updates for (cancelled, removed, timed out).
	ErrCanceled = errors.New("job execution cancelled in the cloud")
)

// Host is what the agent offers job handlers: its shadows, seen and changed
// exactly as a cloud application would. The agent implements it; tests use
// fakes.
type Host interface {
	// Thing is the agent's thing name.
	Thing() string
	// Desire sends a desired update (null deletes a key) to shadow name
	// ("" the classic shadow) and returns the accepted version.
	Desire(ctx context.Context, shadow string, patch map[string]any) (int64, error)
	// Shadow returns the agent's mirror of shadow name: desired and
	// reported (numbers as json.Number) and whether it is known yet.
	Shadow(name string) (ShadowView, bool)
	// Changed returns a channel closed at the next change the agent sees
	// (a mirror update, a write, a report): wait on it, then read Shadow
	// again.
	Changed() <-chan struct{}
}

// ShadowView is one shadow as the agent last saw it.
type ShadowView struct {
	Known             bool
	Version           int64
	Desired, Reported map[string]any
}

// Exec is one execution being run: what a Job gets besides its document.
type Exec struct {
	// JobID and ExecutionNumber identify the execution.
	JobID           string
	ExecutionNumber int64
	// Document is the job document as received.
	Document json.RawMessage
	// Host is the agent.
	Host Host
	// Log is the runner's logger, with the job id.
	Log *slog.Logger
	// Clock is the agent's clock: use it for every wait, so tests with a
	// fake clock control them.
	Clock Clock
	// Resumed is true when this run continues an execution interrupted by a
	// restart (Resumer.Resume).
	Resumed bool

	mu       sync.Mutex
	deadline time.Time
	progress func(ctx context.Context, d Details) error
	waitSent func(ctx context.Context) error
}

// Delivered waits until the service has accepted every status of this
// execution sent so far (after Progress: that the cloud knows it), for a job
// about to do something it cannot take back (a reboot). It returns an error
// wrapping ErrCanceled when the service refused one, or ctx's cause.
func (x *Exec) Delivered(ctx context.Context) error {
	if x.waitSent == nil {
		return nil
	}
	return x.waitSent(ctx)
}

// Progress sends an IN_PROGRESS update with statusDetails d (persisted
// before it is sent, re-sent after an outage) and pushes the step deadline
// out by the step timeout. It returns once the update is persisted; an error
// means it could not even be saved. The "reason" key is reserved for the
// runner.
func (x *Exec) Progress(ctx context.Context, d Details) error {
	if x.progress == nil {
		return nil
	}
	return x.progress(ctx, d)
}

// Deadline is the current step deadline (zero: none).
func (x *Exec) Deadline() time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.deadline
}

// Sleep waits d on the agent's clock, or until ctx is done (returning its
// cause).
func (x *Exec) Sleep(ctx context.Context, d time.Duration) error {
	c, stop := x.Clock.NewTimer(d)
	defer stop()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Clock is the runner's time source; it has the shape of agent.Clock (and
// shadowsync.Clock) so the agent passes its own.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

// KeepAlive sends Progress(d) each time half of the step timeout has
// passed since the last progress, until the returned stop is called or ctx
// ends: for handlers that wait a long time on one thing (a process, a
// download). stop waits for the goroutine.
func (x *Exec) KeepAlive(ctx context.Context, d func() Details) (stop func()) {
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			left := x.Deadline().Sub(x.Clock.Now())
			c, stopT := x.Clock.NewTimer(max(left/2, 0))
			select {
			case <-kctx.Done():
				stopT()
				return
			case <-c:
			}
			if x.Clock.Now().Before(x.Deadline().Add(-left / 2)) {
				continue // someone else reported progress meanwhile
			}
			if err := x.Progress(kctx, d()); err != nil {
				x.Log.Warn("keep-alive progress not saved", "err", err)
			}
		}
	}()
	return func() { cancel(); <-done }
}
