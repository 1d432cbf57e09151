package jobrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/shadowdoc"
)

// Default and largest wait for reported to follow a desired change.
const (
	DefaultMatchTimeout = 30 * time.Second
	MaxMatchTimeout     = time.Hour
	MaxPulse            = time.Hour
)

// decodeStrict decodes a job document into v: numbers exact, unknown
// fields refused (naming the allowed ones).
func decodeStrict(doc json.RawMessage, v any, typ string, allowed string) error {
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			return fmt.Errorf("%w: %s: unknown field %s; allowed: %s", ErrInvalid, typ, f, allowed)
		}
		return fmt.Errorf("%w: %s: %s", ErrInvalid, typ, strings.TrimPrefix(msg, "json: "))
	}
	return nil
}

// duration parses an optional Go duration string ("30s") within [lo, hi].
func duration(field, s string, def, lo, hi time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q: want a duration such as 30s or 5m", ErrInvalid, field, s)
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("%w: %s %s: want %s to %s", ErrInvalid, field, s, lo, hi)
	}
	return d, nil
}

// SetDesired is the "set-desired" job type:
//
//	{"type": "set-desired", "shadow": "", "desired": {"heater": true, "fan": 40}, "timeout": "30s"}
//
// It sends desired to the agent's shadow (shadow: a named shadow, default
// the classic one) as a cloud application would, and succeeds once
// reported matches every value sent (nested objects compare leaf by leaf),
// or fails after timeout (default 30s, at most 1h). Values may not be null.
type SetDesired struct{}

type setDesiredDoc struct {
	Type    string         `json:"type"`
	Shadow  string         `json:"shadow"`
	Desired map[string]any `json:"desired"`
	Timeout string         `json:"timeout"`
}

// Check validates a set-desired document.
func (SetDesired) Check(doc json.RawMessage) (Job, error) {
	var d setDesiredDoc
	if err := decodeStrict(doc, &d, "set-desired", "type, shadow, desired, timeout"); err != nil {
		return nil, err
	}
	if len(d.Desired) == 0 {
		return nil, fmt.Errorf(`%w: set-desired: "desired" is missing or empty; give an object of shadow keys, e.g. {"heater": true}`, ErrInvalid)
	}
	if p := nullLeaf(d.Desired, ""); p != "" {
		return nil, fmt.Errorf("%w: set-desired: desired %q is null; set-desired sets values, it does not delete keys", ErrInvalid, p)
	}
	to, err := duration("timeout", d.Timeout, DefaultMatchTimeout, time.Second, MaxMatchTimeout)
	if err != nil {
		return nil, fmt.Errorf("set-desired: %w", err)
	}
	return JobFunc(func(ctx context.Context, x *Exec) (Details, error) {
		if x.Host == nil {
			return nil, fmt.Errorf("set-desired: the agent offers no shadows to this runner")
		}
		v, err := x.Host.Desire(ctx, d.Shadow, d.Desired)
		if err != nil {
			return nil, fmt.Errorf("set-desired: desired update of shadow %s: %w", shadowName(d.Shadow), err)
		}
		if err := x.Progress(ctx, Details{"phase": "waiting for reported", "version": fmt.Sprint(v)}); err != nil {
			return nil, err
		}
		if err := waitReported(ctx, x, d.Shadow, d.Desired, v, to); err != nil {
			return nil, fmt.Errorf("set-desired: %w", err)
		}
		return Details{"shadow": shadowName(d.Shadow), "desired": compact(d.Desired)}, nil
	}), nil
}

func shadowName(s string) string {
	if s == "" {
		return "(classic)"
	}
	return s
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func nullLeaf(m map[string]any, prefix string) string {
	for k, v := range m {
		switch t := v.(type) {
		case nil:
			return prefix + k
		case map[string]any:
			if p := nullLeaf(t, prefix+k+"."); p != "" {
				return p
			}
		}
	}
	return ""
}

// ErrRejectedByAgent: the agent refused a desired value a job set (its
// reported._status says why); waiting longer would not help.
var ErrRejectedByAgent = errors.New("the agent rejected the desired value")

// waitReported waits until the shadow's reported section holds every leaf
// of want, for at most timeout (agent clock). A key the agent rejected
// (reported._status.<key> "rejected" at version ≥ since) fails at once.
func waitReported(ctx context.Context, x *Exec, shadow string, want map[string]any, since int64, timeout time.Duration) error {
	tc, stop := x.Clock.NewTimer(timeout)
	defer stop()
	for {
		ch := x.Host.Changed()
		sv, _ := x.Host.Shadow(shadow)
		diff := shadowdoc.Delta(want, sv.Reported)
		if len(diff) == 0 {
			return nil
		}
		if err := rejected(sv.Reported, diff, "", since); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-tc:
			return fmt.Errorf("reported did not match within %s; still different: %s (reported: %s)", timeout, compact(diff), compact(pick(sv.Reported, diff)))
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// rejected returns the agent's rejection of a leaf of diff, if reported
// holds one decided at version since or later.
func rejected(reported, diff map[string]any, prefix string, since int64) error {
	st, _ := reported["_status"].(map[string]any)
	for k, v := range diff {
		path := prefix + k
		if sub, ok := v.(map[string]any); ok {
			if err := rejected(reported, sub, path+".", since); err != nil {
				return err
			}
			continue
		}
		e, _ := st[path].(map[string]any)
		if e["status"] != "rejected" {
			continue
		}
		if n, ok := e["version"].(json.Number); ok {
			if ver, err := n.Int64(); err == nil && ver < since {
				continue // an older value's rejection
			}
		}
		msg, _ := e["message"].(string)
		return fmt.Errorf("%w: %s=%s: %s", ErrRejectedByAgent, path, compact(v), msg)
	}
	return nil
}

// pick returns the parts of m at diff's paths.
func pick(m, diff map[string]any) map[string]any {
	out := map[string]any{}
	for k, dv := range diff {
		mv, ok := m[k]
		if !ok {
			continue
		}
		if sub, isObj := dv.(map[string]any); isObj {
			if mm, ok := mv.(map[string]any); ok {
				out[k] = pick(mm, sub)
				continue
			}
		}
		out[k] = mv
	}
	return out
}

// Pulse is the "pulse" job type:
//
//	{"type": "pulse", "key": "relay1", "value": true, "seconds": 5, "shadow": "", "timeout": "30s"}
//
// It sets desired key (a dotted path for nested keys) to value, waits until
// reported has it, holds it for seconds (more than 0, at most 3600), then
// sets desired back to what it was before (its desired value, else its
// reported value) and succeeds once reported is back. timeout bounds each
// wait for reported (default 30s). A pulse interrupted by an agent restart
// puts the old value back and ends FAILED.
type Pulse struct{}

type pulseDoc struct {
	Type    string `json:"type"`
	Shadow  string `json:"shadow"`
	Key     string `json:"key"`
	Value   any    `json:"value"`
	Seconds any    `json:"seconds"`
	Timeout string `json:"timeout"`
}

type pulseJob struct {
	d       pulseDoc
	path    []string
	hold    time.Duration
	timeout time.Duration
}

// Check validates a pulse document.
func (Pulse) Check(doc json.RawMessage) (Job, error) {
	var d pulseDoc
	if err := decodeStrict(doc, &d, "pulse", "type, shadow, key, value, seconds, timeout"); err != nil {
		return nil, err
	}
	if d.Key == "" {
		return nil, fmt.Errorf(`%w: pulse: "key" is missing; give the desired key of the output, e.g. "relay1"`, ErrInvalid)
	}
	path := strings.Split(d.Key, ".")
	for _, p := range path {
		if p == "" {
			return nil, fmt.Errorf("%w: pulse: key %q has an empty path element", ErrInvalid, d.Key)
		}
	}
	switch d.Value.(type) {
	case nil:
		return nil, fmt.Errorf(`%w: pulse: "value" is missing or null; give the value to hold, e.g. true`, ErrInvalid)
	case map[string]any, []any:
		return nil, fmt.Errorf("%w: pulse: value must be a single value (bool, number or string), not %s", ErrInvalid, compact(d.Value))
	}
	if d.Seconds == nil {
		return nil, fmt.Errorf(`%w: pulse: "seconds" is missing; give how long to hold the value, e.g. 5`, ErrInvalid)
	}
	n, isNum := d.Seconds.(json.Number)
	s, err := n.Float64()
	if !isNum || err != nil || s <= 0 || s > MaxPulse.Seconds() {
		return nil, fmt.Errorf("%w: pulse: seconds %s: want a number more than 0 and at most %.0f", ErrInvalid, compact(d.Seconds), MaxPulse.Seconds())
	}
	to, err := duration("timeout", d.Timeout, DefaultMatchTimeout, time.Second, MaxMatchTimeout)
	if err != nil {
		return nil, fmt.Errorf("pulse: %w", err)
	}
	return &pulseJob{d: d, path: path, hold: time.Duration(s * float64(time.Second)), timeout: to}, nil
}

func (p *pulseJob) Run(ctx context.Context, x *Exec) (Details, error) {
	if x.Host == nil {
		return nil, fmt.Errorf("pulse: the agent offers no shadows to this runner")
	}
	sv, _ := x.Host.Shadow(p.d.Shadow)
	prev, ok := lookup(sv.Desired, p.path)
	if !ok || prev == nil {
		prev, ok = lookup(sv.Reported, p.path)
	}
	if !ok || prev == nil {
		return nil, fmt.Errorf("pulse: shadow %s has no desired or reported %q to return to; set it first", shadowName(p.d.Shadow), p.d.Key)
	}
	// Written down before the output moves, so a restart can put it back.
	if err := x.Progress(ctx, Details{"phase": "on", "restore": compact(prev)}); err != nil {
		return nil, err
	}
	if err := p.set(ctx, x, p.d.Value); err != nil {
		p.restore(ctx, x, prev)
		return nil, err
	}
	if err := x.Progress(ctx, Details{"phase": "holding", "restore": compact(prev), "until": x.Clock.Now().Add(p.hold).UTC().Format(time.RFC3339)}); err != nil {
		p.restore(ctx, x, prev)
		return nil, err
	}
	if err := x.Sleep(ctx, p.hold); err != nil {
		p.restore(ctx, x, prev)
		return nil, err
	}
	if err := x.Progress(ctx, Details{"phase": "restoring", "restore": compact(prev)}); err != nil {
		p.restore(ctx, x, prev)
		return nil, err
	}
	if err := p.putBack(ctx, x, prev); err != nil {
		return nil, err
	}
	return Details{"key": p.d.Key, "value": compact(p.d.Value), "restored": compact(prev), "seconds": compact(p.d.Seconds)}, nil
}

// Resume puts the value from before the pulse back.
func (p *pulseJob) Resume(ctx context.Context, x *Exec, last Details) (Details, error) {
	raw, ok := last["restore"]
	if !ok {
		return nil, fmt.Errorf("%s; the pulse had not started", ReasonRestarted)
	}
	v, err := shadowdoc.Decode([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("%s; cannot restore %q: %v", ReasonRestarted, raw, err)
	}
	if err := p.set(ctx, x, v); err != nil {
		return nil, fmt.Errorf("%s; restoring %s failed: %w", ReasonRestarted, raw, err)
	}
	return Details{"restored": raw}, fmt.Errorf("%s; %s restored to %s", ReasonRestarted, p.d.Key, raw)
}

// RestoreRetry is how long a pulse waits between two attempts to put the
// previous value back (the connection may be down at the end of the hold).
const RestoreRetry = 2 * time.Second

// putBack sets prev again until it sticks: an output must not stay pulsed
// because the network was down when the hold ended. It keeps the step alive
// meanwhile; when ctx ends (agent stopping, cancelled in the cloud) it makes
// one last attempt, and a restart's Resume tries again.
func (p *pulseJob) putBack(ctx context.Context, x *Exec, prev any) error {
	stop := x.KeepAlive(ctx, func() Details { return Details{"phase": "restoring", "restore": compact(prev)} })
	defer stop()
	for {
		err := p.set(ctx, x, prev)
		if err == nil {
			return nil
		}
		x.Log.Warn("pulse: putting the previous value back failed; retrying", "key", p.d.Key, "err", err)
		if serr := x.Sleep(ctx, RestoreRetry); serr != nil {
			p.restore(ctx, x, prev)
			return fmt.Errorf("%w (last error: %v)", serr, err)
		}
	}
}

// restore puts prev back after a failed pulse, best effort (ctx may be
// done: a short grace of its own).
func (p *pulseJob) restore(ctx context.Context, x *Exec, prev any) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := x.Host.Desire(rctx, p.d.Shadow, nest(p.path, prev)); err != nil {
		x.Log.Error("pulse: restoring the previous value failed", "key", p.d.Key, "err", err)
	}
}

func (p *pulseJob) set(ctx context.Context, x *Exec, v any) error {
	patch := nest(p.path, v)
	ver, err := x.Host.Desire(ctx, p.d.Shadow, patch)
	if err != nil {
		return fmt.Errorf("pulse: desired %s=%s: %w", p.d.Key, compact(v), err)
	}
	if err := waitReported(ctx, x, p.d.Shadow, patch, ver, p.timeout); err != nil {
		return fmt.Errorf("pulse: %s=%s: %w", p.d.Key, compact(v), err)
	}
	return nil
}

func lookup(m map[string]any, path []string) (any, bool) {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func nest(path []string, v any) map[string]any {
	out := map[string]any{path[len(path)-1]: v}
	for i := len(path) - 2; i >= 0; i-- {
		out = map[string]any{path[i]: out}
	}
	return out
}
