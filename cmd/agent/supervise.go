package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/agent/jobrun"
	"github.com/pinshadow/pinshadow/agent/supervisor"
	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/config"
)

// runConfigOptions are how `agent run` reads configurations: the real file
// system, environment and board.
func runConfigOptions() config.Options {
	return config.Options{
		ReadFile:  os.ReadFile,
		LookupEnv: os.LookupEnv,
		Detect:    func() board.Detection { return board.Detect("") },
	}
}

// superviseAgent runs the agent under a supervisor: one generation per
// configuration file, switched (and verified, or rolled back) by
// apply-config jobs. A switch a crash left unfinished is rolled back first.
func superviseAgent(ctx context.Context, e *env, o runOptions, log *slog.Logger) error {
	var sup *supervisor.Supervisor
	sup, err := supervisor.New(supervisor.Options{
		Path:   o.configPath,
		Config: runConfigOptions(),
		// What agent.New checks beyond the file (drivers, endpoint).
		Check: func(cfg *config.Config) error {
			_, err := agent.New(cfg, o.deps)
			return err
		},
		Run: func(ctx context.Context, g *supervisor.Generation) error {
			og := o
			og.configSwitch = configSwitch{sup}
			return runGeneration(ctx, e, og, log, g)
		},
		Logger: log,
	})
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	err = sup.Run(ctx)
	var probs config.Errors
	switch {
	case err == nil:
		return nil
	case errors.As(err, &probs):
		for _, p := range probs {
			fmt.Fprintln(e.stderr, p.Error())
		}
		return &exitError{code: 1, err: fmt.Errorf("%d problem(s) in %s; nothing was started (check it with agent validate)", len(probs), o.configPath)}
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: 1, err: fmt.Errorf("configuration %s: %w", o.configPath, err)}
}

// systemJobTypes adds the job types only `agent run` offers to extra:
// apply-config (it needs the supervisor) and reboot, configured from the
// jobs: section (runOptions.reboot overrides what it sets). Each is
// offered only when its key is in the section: either one hands whoever can
// create jobs the whole device.
func systemJobTypes(o runOptions, cfg *config.Config, sent *deliveries, extra map[string]jobrun.Handler) map[string]jobrun.Handler {
	if cfg.Jobs == nil || !cfg.Jobs.Enabled {
		return extra
	}
	t := map[string]jobrun.Handler{}
	if o.configSwitch != nil && cfg.Jobs.ApplyConfig.Enabled {
		verify := cfg.Jobs.ApplyConfig.VerifyTimeout
		if verify == 0 {
			verify = supervisor.DefaultVerifyTimeout // also the most a job document may ask for
		}
		t[jobrun.TypeApplyConfig] = jobrun.ApplyConfig(jobrun.ApplyConfigOptions{Switch: o.configSwitch, VerifyTimeout: verify})
	}
	if !cfg.Jobs.Reboot.Enabled {
		for k, h := range extra {
			t[k] = h
		}
		return t
	}
	ro := o.reboot
	if len(ro.Command) == 0 {
		ro.Command = cfg.Jobs.Reboot.Command
	}
	if ro.Timeout == 0 {
		ro.Timeout = cfg.Jobs.Reboot.Timeout
	}
	if ro.Delivered == nil {
		ro.Delivered = sent.wait
	}
	t[jobrun.TypeReboot] = jobrun.Reboot(ro)
	for k, h := range extra {
		t[k] = h
	}
	return t
}

// observeEvents hands every agent event to the generation (device faults
// decide a trial), to the deliveries and then to next.
func observeEvents(g *supervisor.Generation, sent *deliveries, next func(agent.Event)) func(agent.Event) {
	return func(ev agent.Event) {
		g.Observe(ev)
		sent.observe(ev)
		if next != nil {
			next(ev)
		}
	}
}

// deliveries follows the IN_PROGRESS statuses the Jobs service accepted
// (the agent's job_sent events), so the reboot job can wait for its
// "rebooting" note to be in the cloud before the machine goes down.
type deliveries struct {
	mu      sync.Mutex
	sent    map[string]string // job → statusDetails of its last IN_PROGRESS accepted
	changed chan struct{}     // closed at each change of sent
}

func newDeliveries() *deliveries {
	return &deliveries{sent: map[string]string{}, changed: make(chan struct{})}
}

func (d *deliveries) observe(ev agent.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case ev.Kind == agent.EventJobSent && ev.Status == string(jobrun.InProgress):
		v, _ := ev.Value.(map[string]string)
		d.sent[ev.Key] = jobrun.Details(v).String()
	case ev.Kind == agent.EventJobFinished:
		delete(d.sent, ev.Key)
	default:
		return
	}
	close(d.changed)
	d.changed = make(chan struct{})
}

// wait returns once the service accepted an IN_PROGRESS of job with
// statusDetails want, or ctx's cause.
func (d *deliveries) wait(ctx context.Context, job string, want jobrun.Details) error {
	w := want.Clean().String()
	for {
		d.mu.Lock()
		ok, ch := d.sent[job] == w, d.changed
		d.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-ch:
		}
	}
}

// configSwitch adapts the supervisor to the apply-config job type.
type configSwitch struct{ s *supervisor.Supervisor }

func (c configSwitch) Validate(data []byte) error {
	cfg, err := c.s.Validate(data)
	var probs config.Errors
	if errors.As(err, &probs) {
		return probs // one problem per line, without the wrapping
	}
	if err != nil {
		return err
	}
	return switchable(c.s.Current(), cfg)
}

// switchable refuses what apply-config must not do even to a valid
// configuration: the job's outcome is reported by the agent on the new
// file, so it must still be this thing and still take jobs.
func switchable(cur, next *config.Config) error {
	if cur != nil && next.Thing != cur.Thing {
		return fmt.Errorf("the new configuration is for thing %q, this device is %q; apply-config cannot move a device to another thing (the job's status could not be reported); re-provision it instead", next.Thing, cur.Thing)
	}
	if next.Jobs == nil || !next.Jobs.Enabled {
		return errors.New("the new configuration has no enabled jobs: section; the device could not report this job or take later ones (add jobs: {})")
	}
	return nil
}

func (c configSwitch) Apply(ctx context.Context, job string, data []byte, verify time.Duration) error {
	return c.s.Apply(ctx, supervisor.Request{Job: job, Data: data, VerifyTimeout: verify})
}

func (c configSwitch) Outcome(ctx context.Context, job string) (jobrun.SwitchResult, error) {
	r, err := c.s.Outcome(ctx, job)
	if errors.Is(err, supervisor.ErrNoSwitch) {
		return jobrun.SwitchResult{}, fmt.Errorf("%w: %s", jobrun.ErrNoSwitch, job)
	}
	if err != nil {
		return jobrun.SwitchResult{}, err
	}
	return jobrun.SwitchResult{Applied: r.Phase == supervisor.PhaseApplied, Reason: r.Reason, Config: r.Config, Backup: r.Backup}, nil
}
