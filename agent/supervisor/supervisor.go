// Package supervisor runs the agent from its configuration file, one
// generation after another, and switches it to a new file on request (the
// apply-config job): the old file is kept as a backup and the new one
// written atomically. A change the running agent's live reload takes is
// done there; otherwise an agent is started on the new file, and it must
// converge with the cloud (first get and report of every shadow) with every
// device opened within the verify timeout, or it is stopped, the backup put
// back, and an agent started on the old file again.
//
// Every step is recorded in a file next to the configuration (RecordPath)
// before it is taken, so a crash or kill at any moment ends, at the next
// start, with the right file in place and a final outcome for the job: a
// switch found unfinished at start-up is rolled back (the new file never
// proved it can run).
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/config"
)

// DefaultVerifyTimeout is how long a new configuration has to converge when
// the request names no timeout.
const DefaultVerifyTimeout = 2 * time.Minute

// Errors callers act on.
var (
	// ErrBusy: another switch is being verified; try again when it ends.
	ErrBusy = errors.New("supervisor: another configuration switch is in progress")
	// ErrNoSwitch: no switch is recorded for the job (Outcome).
	ErrNoSwitch = errors.New("supervisor: no configuration switch recorded for this job")
	// ErrInvalid wraps the problems of a configuration that does not
	// validate (config.Errors inside, for errors.As).
	ErrInvalid = errors.New("supervisor: the new configuration is invalid")
)

// Agent is what the supervisor watches in a generation: *agent.Agent.
type Agent interface {
	Ready() <-chan struct{}
	Status() agent.Status
	// Reload switches the running agent to cfg, or refuses (wrapping
	// agent.ErrReloadRefused) a change that needs a restart.
	Reload(cfg *config.Config) error
}

// Options configure a Supervisor.
type Options struct {
	// Path is the configuration file the agent runs from; a switch
	// replaces it.
	Path string
	// Config reads and validates configurations (cmd/agent: the real file
	// system, environment and board). ReadFile is wrapped so that a new
	// configuration is checked as if it were already the file at Path
	// (includes resolve next to it).
	Config config.Options
	// Check verifies what config validation cannot (agent.New's checks:
	// drivers, endpoint override); nil skips it.
	Check func(cfg *config.Config) error
	// Run runs one generation: an agent on g.Config until ctx is done (then
	// it stops the agent and returns nil) or the agent stops by itself (its
	// error). It calls g.Started once the agent exists and passes every
	// agent event to g.Observe.
	Run func(ctx context.Context, g *Generation) error
	// Clock times verification (nil: real time).
	Clock agent.Clock
	// Logger receives what the supervisor does (nil: discard).
	Logger *slog.Logger
}

// Supervisor runs generations of the agent and switches configurations.
// Create it with New, run it with Run; Validate, Apply and Outcome may be
// called from any goroutine (the apply-config job calls them).
type Supervisor struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	current *config.Config // the configuration of the running generation
	agent   Agent          // its agent, once started (nil between generations)
	rec     *Record        // the last switch (nil: none recorded)
	changed chan struct{}  // closed when rec changes
	switchc chan struct{}  // a switch was prepared: stop this generation
}

// New returns a supervisor for the configuration at o.Path.
func New(o Options) (*Supervisor, error) {
	if o.Path == "" || o.Run == nil {
		return nil, errors.New("supervisor: Path and Run are required")
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Config.ReadFile == nil {
		o.Config.ReadFile = os.ReadFile
	}
	return &Supervisor{o: o, log: o.Logger, changed: make(chan struct{}), switchc: make(chan struct{}, 1)}, nil
}

// Generation is one run of the agent on one configuration.
type Generation struct {
	// Config is the configuration this generation runs.
	Config *config.Config
	// Trial is true when the configuration was just switched to and has
	// not yet proved it can run.
	Trial bool

	sup     *Supervisor
	started chan Agent
	faults  chan string
	// Without shadows the agent never converges: online plus a loop
	// iteration (devices opened by then) is the trial's test instead.
	online  atomic.Bool
	settled chan struct{}
}

// Started tells the supervisor the agent exists. Call it once.
func (g *Generation) Started(a Agent) {
	if g.sup != nil {
		g.sup.mu.Lock()
		g.sup.agent = a
		g.sup.mu.Unlock()
	}
	select {
	case g.started <- a:
	default:
	}
}

// Observe is given every agent event (from agent.Deps.Events). It does not
// block. A device fault before the first convergence fails a trial.
func (g *Generation) Observe(e agent.Event) {
	switch {
	case e.Kind == agent.EventFault && e.Device != "":
		select {
		case g.faults <- e.Message:
		default: // the first faults are enough to decide
		}
	case e.Kind == agent.EventOnline:
		g.online.Store(true)
	case e.Kind == agent.EventIteration && g.online.Load():
		select {
		case g.settled <- struct{}{}:
		default:
		}
	}
}

// Current returns the configuration of the generation running now (nil
// before the first).
func (s *Supervisor) Current() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Validate checks data as the configuration file: config validation, then
// Options.Check. Problems come back wrapping ErrInvalid (and config.Errors
// when the file itself is wrong).
func (s *Supervisor) Validate(data []byte) (*config.Config, error) {
	cfg, err := s.parse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if s.o.Check != nil {
		if err := s.o.Check(cfg); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return cfg, nil
}

// parse reads the configuration at Path, with data as its content when not
// nil.
func (s *Supervisor) parse(data []byte) (*config.Config, error) {
	o := s.o.Config
	if data != nil {
		read := o.ReadFile
		o.ReadFile = func(name string) ([]byte, error) {
			if name == s.o.Path {
				return data, nil
			}
			return read(name)
		}
	}
	return config.Parse(s.o.Path, o)
}

// Request asks for a switch to a new configuration.
type Request struct {
	// Job is the job execution asking (recorded, so the outcome can be
	// reported after a restart).
	Job string
	// Data is the new configuration file's content.
	Data []byte
	// VerifyTimeout bounds the new agent's convergence (0: the default).
	VerifyTimeout time.Duration
}

// Apply prepares a switch and asks the running generation to stop: the
// current file is copied to BackupPath, the record written, the new file
// written in place. It returns once that is done; the outcome comes from
// Outcome. Calling it again for a job whose switch is recorded (the last or
// one of the Earlier) does nothing: a job resumed after the restart it
// caused, or late, is never applied twice. The data must have passed
// Validate.
func (s *Supervisor) Apply(ctx context.Context, req Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done, err := s.prepare(req)
	if err != nil || done {
		return err
	}
	if s.reload(req.Job) {
		return nil
	}
	s.log.Info("apply-config: new configuration written; restarting the agent on it",
		"job", req.Job, "file", s.o.Path, "backup", BackupPath(s.o.Path), "verify_timeout", req.VerifyTimeout)
	select {
	case s.switchc <- struct{}{}:
	default:
	}
	return nil
}

// reload applies the file just written to the running agent when its live
// reload accepts the change (nothing that needs a restart changed): the
// switch is then done, with no reconnect. It reports whether it did.
func (s *Supervisor) reload(job string) bool {
	s.mu.Lock()
	a := s.agent
	s.mu.Unlock()
	if a == nil {
		return false
	}
	cfg, err := s.parse(nil)
	if err != nil {
		return false // the restart path reports it
	}
	if err := a.Reload(cfg); err != nil {
		s.log.Info("apply-config: the live reload does not take this change; restarting instead", "job", job, "reason", err.Error())
		return false
	}
	rec, _ := s.Last()
	rec.Phase, rec.Ended = PhaseApplied, s.o.Clock.Now().UTC()
	if err := s.save(rec); err != nil {
		s.log.Error("apply-config: recording success failed; the new configuration runs", "err", err)
	}
	s.mu.Lock()
	s.current = cfg
	s.mu.Unlock()
	s.log.Info("apply-config: the new configuration runs (live reload)", "job", job)
	return true
}

// prepare keeps the backup, records the switch and writes the new file.
// done is true when the switch of req.Job is already recorded.
func (s *Supervisor) prepare(req Request) (done bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rec.find(req.Job); ok {
		return true, nil // resumed: the switch is recorded (and maybe over)
	}
	if s.rec != nil && !s.rec.Phase.Final() {
		return false, fmt.Errorf("%w (job %s, since %s)", ErrBusy, s.rec.Job, s.rec.Started.Format(time.RFC3339))
	}
	if req.VerifyTimeout <= 0 {
		req.VerifyTimeout = DefaultVerifyTimeout
	}
	// A symlinked configuration (a deployment tool's) keeps its link: the
	// file it points to is the one replaced.
	path, err := filepath.EvalSymlinks(s.o.Path)
	if err != nil {
		return false, fmt.Errorf("reading the configuration in force %s: %w", s.o.Path, err)
	}
	cur, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("reading the configuration in force %s: %w", path, err)
	}
	rec := Record{Job: req.Job, Phase: PhaseVerifying, Config: path, Backup: BackupPath(s.o.Path), Earlier: s.rec.history(),
		VerifyTimeout: req.VerifyTimeout, Started: s.o.Clock.Now().UTC()}
	mode := modeOf(path, 0o640)
	if err := writeAtomic(rec.Backup, cur, mode); err != nil {
		return false, fmt.Errorf("keeping a backup of the configuration: %w", err)
	}
	if err := saveRecord(RecordPath(s.o.Path), rec); err != nil {
		return false, err
	}
	if err := writeAtomic(path, req.Data, mode); err != nil {
		// Nothing changed: say so in the record, so a restart does not
		// restore (harmlessly) and report an interruption.
		rec.Phase, rec.Reason, rec.Ended = PhaseRolledBack, err.Error(), s.o.Clock.Now().UTC()
		_ = saveRecord(RecordPath(s.o.Path), rec)
		s.setLocked(&rec)
		return false, err
	}
	s.setLocked(&rec)
	return false, nil
}

// Outcome waits until the switch recorded for job is final and returns its
// record (PhaseApplied, or PhaseRolledBack with the Reason). It returns an
// error wrapping ErrNoSwitch when no switch of job is recorded (neither the
// last nor an earlier one), and ctx's cause when ctx ends first.
func (s *Supervisor) Outcome(ctx context.Context, job string) (Record, error) {
	for {
		s.mu.Lock()
		rec, found := s.rec.find(job)
		ch := s.changed
		s.mu.Unlock()
		if !found {
			return Record{}, fmt.Errorf("%w: %s", ErrNoSwitch, job)
		}
		if rec.Phase.Final() {
			rec.Earlier = nil
			return rec, nil
		}
		select {
		case <-ctx.Done():
			return Record{}, context.Cause(ctx)
		case <-ch:
		}
	}
}

// Last returns the last switch recorded (false: none).
func (s *Supervisor) Last() (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		return Record{}, false
	}
	return *s.rec, true
}

func (s *Supervisor) setLocked(r *Record) {
	s.rec = r
	close(s.changed)
	s.changed = make(chan struct{})
}

// save persists r and makes it the current record.
func (s *Supervisor) save(r Record) error {
	err := saveRecord(RecordPath(s.o.Path), r)
	s.mu.Lock()
	s.setLocked(&r)
	s.mu.Unlock()
	return err
}

// Run runs the agent until ctx is done, switching configurations when
// Apply asks. It first finishes a switch a crash left unfinished (rolling it
// back). It returns nil when ctx ends, the error of the configuration file
// when it cannot be loaded (config.Errors inside for problems), or the error
// of a generation that stopped by itself outside a trial.
func (s *Supervisor) Run(ctx context.Context) error {
	if err := s.recover(); err != nil {
		return err
	}
	cfg, err := s.parse(nil)
	if err != nil {
		return err
	}
	trial := false
	for {
		out := s.generation(ctx, &Generation{Config: cfg, Trial: trial, sup: s,
			started: make(chan Agent, 1), faults: make(chan string, 8), settled: make(chan struct{}, 1)})
		trial = false
		var reason string
		switch out.kind {
		case outStopped:
			return nil
		case outEnded:
			if !out.trial {
				return out.err
			}
			reason = fmt.Sprintf("the agent on the new configuration stopped: %v", out.err)
		case outFailed:
			reason = out.reason
		case outSwitch:
			next, err := s.parse(nil)
			if err == nil && s.o.Check != nil {
				err = s.o.Check(next)
			}
			if err == nil {
				cfg, trial = next, true
				continue
			}
			reason = fmt.Sprintf("the new configuration cannot be loaded: %v", err)
		}
		if err := s.rollback(reason); err != nil {
			return err
		}
		if cfg, err = s.parse(nil); err != nil {
			return fmt.Errorf("supervisor: the restored configuration does not load either: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return nil
		}
	}
}

type outKind int

const (
	outStopped outKind = iota // ctx ended
	outEnded                  // the generation returned by itself
	outFailed                 // the trial failed
	outSwitch                 // Apply prepared a switch
)

type outcome struct {
	kind     outKind
	trial    bool // the generation was still on trial
	returned bool // Run has returned (its result was taken)
	err      error
	reason   string
}

// generation runs g until something ends it, and stops it.
func (s *Supervisor) generation(ctx context.Context, g *Generation) outcome {
	s.mu.Lock()
	s.current = g.Config
	s.mu.Unlock()
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.o.Run(gctx, g) }()
	out := s.watch(ctx, g, done)
	if !out.returned {
		cancel()
		<-done
	}
	s.mu.Lock()
	s.agent = nil // Run has returned: no late Started
	s.mu.Unlock()
	return out
}

// watch waits for what ends a generation, deciding its trial on the way.
func (s *Supervisor) watch(ctx context.Context, g *Generation, done <-chan error) outcome {
	trial := g.Trial
	var deadline <-chan time.Time
	var verifyTimeout time.Duration
	if trial {
		rec, _ := s.Last()
		verifyTimeout = rec.VerifyTimeout
		if verifyTimeout <= 0 {
			verifyTimeout = DefaultVerifyTimeout
		}
		c, stop := s.o.Clock.NewTimer(verifyTimeout)
		defer stop()
		deadline = c
		s.log.Info("apply-config: verifying the new configuration", "job", rec.Job, "timeout", verifyTimeout)
	}
	var a Agent
	var ready <-chan struct{}
	for {
		select {
		case <-ctx.Done():
			return outcome{kind: outStopped, trial: trial}
		case err := <-done:
			if ctx.Err() != nil { // asked to stop: it did
				return outcome{kind: outStopped, trial: trial, returned: true}
			}
			if err == nil && trial {
				err = errors.New("it returned before being asked to stop")
			}
			return outcome{kind: outEnded, trial: trial, returned: true, err: err}
		case <-s.switchc:
			return outcome{kind: outSwitch, trial: trial}
		case a = <-g.started:
			if trial {
				ready = a.Ready()
				if len(g.Config.Shadows) == 0 {
					ready = g.settled
				}
			}
		case msg := <-g.faults:
			// A stop wins over what happened during it (a select picks
			// among ready cases at random): a fault from the agent going
			// down is not the trial failing, and the next start finishes
			// an unfinished trial anyway.
			if ctx.Err() != nil {
				return outcome{kind: outStopped, trial: trial}
			}
			if trial {
				return outcome{kind: outFailed, trial: true, reason: "a device failed: " + msg}
			}
		case <-ready:
			if ctx.Err() != nil {
				return outcome{kind: outStopped, trial: trial}
			}
			ready = nil
			// A device fault emitted before convergence is already queued.
			select {
			case msg := <-g.faults:
				return outcome{kind: outFailed, trial: true, reason: "a device failed: " + msg}
			default:
			}
			if err := s.verified(); err != nil {
				s.log.Error("apply-config: recording success failed; the new configuration runs", "err", err)
			}
			trial, deadline = false, nil
		case <-deadline:
			if ctx.Err() != nil {
				return outcome{kind: outStopped, trial: trial}
			}
			if a == nil { // started at the same moment: explain with it
				select {
				case a = <-g.started:
				default:
				}
			}
			return outcome{kind: outFailed, trial: true, reason: notConverged(verifyTimeout, a)}
		}
	}
}

// notConverged explains a verify timeout with what the agent last saw.
func notConverged(d time.Duration, a Agent) string {
	msg := fmt.Sprintf("the agent on the new configuration did not converge with the cloud within %s", d)
	if a == nil {
		return msg + " (it did not start)"
	}
	st := a.Status()
	var why []string
	if st.Connection.State != "" {
		why = append(why, "connection "+st.Connection.State)
	}
	if st.Connection.LastError != "" {
		why = append(why, st.Connection.LastError)
	} else if st.LastError != "" {
		why = append(why, st.LastError)
	}
	if len(why) > 0 {
		msg += " (" + strings.Join(why, ": ") + ")"
	}
	return msg
}

// verified records the trial's success.
func (s *Supervisor) verified() error {
	rec, ok := s.Last()
	if !ok || rec.Phase != PhaseVerifying {
		return nil
	}
	rec.Phase, rec.Ended = PhaseApplied, s.o.Clock.Now().UTC()
	s.log.Info("apply-config: the new configuration runs", "job", rec.Job, "took", rec.Ended.Sub(rec.Started).Round(time.Millisecond))
	return s.save(rec)
}

// rollback puts the backup back and records why. The reason is recorded
// first, so a crash during the restore keeps it.
func (s *Supervisor) rollback(reason string) error {
	rec, ok := s.Last()
	if !ok {
		return fmt.Errorf("supervisor: rollback without a recorded switch (%s)", reason)
	}
	s.log.Error("apply-config: rolling back to the previous configuration", "job", rec.Job, "reason", reason)
	rec.Phase, rec.Reason = PhaseRollingBack, reason
	if err := s.save(rec); err != nil {
		s.log.Error("apply-config: recording the rollback failed; restoring anyway", "err", err)
	}
	old, err := os.ReadFile(rec.Backup)
	if err != nil {
		return fmt.Errorf("supervisor: restoring the previous configuration from %s: %w", rec.Backup, err)
	}
	if err := writeAtomic(rec.Config, old, modeOf(rec.Backup, 0o640)); err != nil {
		return fmt.Errorf("supervisor: restoring the previous configuration: %w", err)
	}
	rec.Phase, rec.Ended = PhaseRolledBack, s.o.Clock.Now().UTC()
	rec.Reason = reason + "; the previous configuration was restored"
	if err := s.save(rec); err != nil {
		s.log.Error("apply-config: recording the rollback failed", "err", err)
	}
	return nil
}

// recover loads the record and finishes a switch a crash interrupted.
func (s *Supervisor) recover() error {
	rec, err := loadRecord(RecordPath(s.o.Path))
	if err != nil {
		return err
	}
	if rec == nil {
		return nil
	}
	s.mu.Lock()
	s.setLocked(rec)
	s.mu.Unlock()
	switch rec.Phase {
	case PhaseVerifying:
		return s.rollback("the agent stopped (crash, kill or restart) while the new configuration was being verified")
	case PhaseRollingBack:
		return s.rollback(rec.Reason)
	}
	return nil
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
