package jobrun

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TypeApplyConfig is the job type that replaces the agent's configuration
// file.
const TypeApplyConfig = "apply-config"

// ConfigSwitch is what apply-config needs of the process running the agent
// (cmd/agent adapts agent/supervisor.Supervisor to it).
type ConfigSwitch interface {
	// Validate checks data as the new configuration file; the error lists
	// the problems, one per line (at most the first few are reported).
	Validate(data []byte) error
	// Apply keeps the current file as a backup, writes data in its place
	// and restarts the agent on it. It returns once the switch is prepared
	// (the agent running this job is about to be stopped); calling it again
	// for the same job does nothing.
	Apply(ctx context.Context, job string, data []byte, verifyTimeout time.Duration) error
	// Outcome waits until the switch asked by job is over. An error
	// wrapping ErrNoSwitch means no switch is recorded for job.
	Outcome(ctx context.Context, job string) (SwitchResult, error)
}

// SwitchResult is how a configuration switch ended.
type SwitchResult struct {
	// Applied: the new configuration runs. Otherwise the old one was put
	// back and runs again, and Reason says why.
	Applied bool
	Reason  string
	// Config is the configuration file, Backup the copy of the previous one.
	Config, Backup string
}

// ErrNoSwitch: no configuration switch is recorded for the job.
var ErrNoSwitch = errors.New("no configuration switch recorded for this job")

// MaxConfigProblems is how many configuration problems an apply-config
// rejection lists (the statusDetails value is cut at MaxDetailValue anyway).
const MaxConfigProblems = 5

// ApplyConfigOptions configure the apply-config type.
type ApplyConfigOptions struct {
	// Switch does the work (required).
	Switch ConfigSwitch
	// VerifyTimeout bounds the new agent's convergence (0: the switch's
	// default). A job document may ask for less, never for more.
	VerifyTimeout time.Duration
}

// ApplyConfig returns the apply-config handler. Its document is
//
//	{"type": "apply-config", "config": "<YAML>"}
//	{"type": "apply-config", "config_base64": "<base64 of the YAML>"}
//
// with an optional "verify_timeout" ("30s"). Check validates the
// configuration as the agent would load it (so it reads include files and
// the environment: the one exception to Check's no-I/O rule, because an
// invalid configuration must be REJECTED, not FAILED); a configuration with
// problems is REJECTED with the first ones in "reason". Run applies it
// through the ConfigSwitch; the job is SUCCEEDED once the new file is in
// force (a live reload took it, or the agent restarted on it converged),
// FAILED with the reason when it was rolled back. The job survives the
// restart it causes (Resumer).
func ApplyConfig(o ApplyConfigOptions) Handler {
	return HandlerFunc(func(doc json.RawMessage) (Job, error) {
		if o.Switch == nil {
			return nil, errors.New("apply-config: this agent cannot switch its configuration (no supervisor)")
		}
		data, verify, err := decodeApplyConfig(doc)
		if err != nil {
			return nil, err
		}
		if verify == 0 || (o.VerifyTimeout > 0 && verify > o.VerifyTimeout) {
			verify = o.VerifyTimeout
		}
		if err := o.Switch.Validate(data); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrInvalid, configProblems(err))
		}
		return &applyConfigJob{sw: o.Switch, data: data, verify: verify}, nil
	})
}

// decodeApplyConfig reads an apply-config document (pure; fuzzed).
func decodeApplyConfig(doc json.RawMessage) (data []byte, verify time.Duration, err error) {
	var d struct {
		Type          string  `json:"type"`
		Config        *string `json:"config"`
		ConfigBase64  *string `json:"config_base64"`
		VerifyTimeout string  `json:"verify_timeout"`
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, 0, fmt.Errorf("%w: apply-config document: %v (want {\"type\": \"apply-config\", \"config\": \"<YAML>\"} or \"config_base64\")", ErrInvalid, err)
	}
	switch {
	case d.Config != nil && d.ConfigBase64 != nil:
		return nil, 0, fmt.Errorf("%w: apply-config: give \"config\" or \"config_base64\", not both", ErrInvalid)
	case d.Config != nil:
		data = []byte(*d.Config)
	case d.ConfigBase64 != nil:
		data, err = base64.StdEncoding.DecodeString(strings.TrimSpace(*d.ConfigBase64))
		if err != nil {
			return nil, 0, fmt.Errorf("%w: apply-config: config_base64 is not standard base64: %v", ErrInvalid, err)
		}
	default:
		return nil, 0, fmt.Errorf("%w: apply-config: the document has no \"config\" (the YAML as a string) or \"config_base64\"", ErrInvalid)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, 0, fmt.Errorf("%w: apply-config: the configuration is empty", ErrInvalid)
	}
	if d.VerifyTimeout != "" {
		verify, err = time.ParseDuration(d.VerifyTimeout)
		if err != nil || verify < time.Second {
			return nil, 0, fmt.Errorf("%w: apply-config: verify_timeout %q: want a duration of at least 1s, e.g. \"30s\"", ErrInvalid, d.VerifyTimeout)
		}
	}
	return data, verify, nil
}

// configProblems renders a validation error: the problem count and the
// first MaxConfigProblems problems, "; "-separated (statusDetails values
// are one line).
func configProblems(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	n := len(lines)
	if n > MaxConfigProblems {
		lines = lines[:MaxConfigProblems]
	}
	word := "problems"
	if n == 1 {
		word = "problem"
	}
	msg := fmt.Sprintf("the new configuration has %d %s", n, word)
	if n > len(lines) {
		msg += fmt.Sprintf(" (first %d)", len(lines))
	}
	return msg + ": " + strings.Join(lines, "; ")
}

type applyConfigJob struct {
	sw     ConfigSwitch
	data   []byte
	verify time.Duration
}

// Run prepares the switch and waits for its outcome. The supervisor stops
// the agent running this job right after Apply, so Run usually returns with
// ctx's cause and the job continues in Resume on the new (or restored) agent.
func (j *applyConfigJob) Run(ctx context.Context, x *Exec) (Details, error) {
	if err := x.Progress(ctx, Details{"phase": "applying"}); err != nil {
		return nil, fmt.Errorf("apply-config: cannot persist the job before switching (%w); nothing was changed", err)
	}
	if err := j.sw.Apply(ctx, x.JobID, j.data, j.verify); err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("apply-config: %w; the configuration in force is unchanged", err)
	}
	return j.await(ctx, x)
}

// Resume carries on after the restart: the outcome is recorded by the
// supervisor (or will be, once the new agent converges). When no switch is
// recorded for the job the agent stopped before Apply: run it again.
func (j *applyConfigJob) Resume(ctx context.Context, x *Exec, _ Details) (Details, error) {
	return j.await(ctx, x)
}

func (j *applyConfigJob) await(ctx context.Context, x *Exec) (Details, error) {
	// Verification may outlast the step timeout between two Progress calls.
	stop := x.KeepAlive(ctx, func() Details { return Details{"phase": "verifying"} })
	res, err := j.sw.Outcome(ctx, x.JobID)
	stop()
	switch {
	case errors.Is(err, ErrNoSwitch) && x.Resumed:
		x.Resumed = false
		return j.Run(ctx, x)
	case err != nil && ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case err != nil:
		return nil, fmt.Errorf("apply-config: %w", err)
	}
	d := Details{"config": res.Config, "backup": res.Backup}
	if !res.Applied {
		return d, errors.New(res.Reason)
	}
	return d, nil
}
