// Package jobs is the AWS IoT Jobs service of the local cloud as pure
// logic: jobs, their executions on things, the device MQTT API (get,
// start-next, <jobId>/get, <jobId>/update with notify and notify-next)
// and a small management API on reserved topics for creating, listing,
// describing and cancelling jobs. It does no I/O and reads no clock: every
// call takes the current time, and Tick expires step and in-progress
// timeouts, so tests drive time by hand.
//
// An Engine is not safe for concurrent use; the local cloud runs it on one
// goroutine.
package jobs

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Status is a job execution's status.
type Status string

// Job execution statuses, as AWS spells them.
const (
	Queued     Status = "QUEUED"
	InProgress Status = "IN_PROGRESS"
	Succeeded  Status = "SUCCEEDED"
	Failed     Status = "FAILED"
	TimedOut   Status = "TIMED_OUT"
	Rejected   Status = "REJECTED"
	Removed    Status = "REMOVED"
	Canceled   Status = "CANCELED"
)

func (s Status) valid() bool {
	switch s {
	case Queued, InProgress, Succeeded, Failed, TimedOut, Rejected, Removed, Canceled:
		return true
	}
	return false
}

// Terminal reports whether s ends the execution.
func (s Status) Terminal() bool { return s.valid() && s != Queued && s != InProgress }

// JobStatus is a job's status.
type JobStatus string

// Job statuses.
const (
	JobInProgress JobStatus = "IN_PROGRESS"
	JobCanceled   JobStatus = "CANCELED"
	JobCompleted  JobStatus = "COMPLETED"
)

// Limits AWS applies.
const (
	// DefaultMaxDocumentBytes is AWS's job document size limit (32 KB).
	DefaultMaxDocumentBytes = 32 * 1024
	maxClientToken          = 64
	maxStepTimeout          = 10080 // minutes: 7 days
	maxInProgressTimeout    = 10080
	maxStatusDetailKey      = 128
	maxStatusDetailValue    = 1024
	maxStatusDetails        = 10
	maxDescription          = 2028
	maxTargets              = 1000
)

// Options configure an Engine.
type Options struct {
	// MaxDocumentBytes limits a job document (0 = DefaultMaxDocumentBytes).
	MaxDocumentBytes int
}

// Message is one MQTT message the engine wants published.
type Message struct {
	Topic   string
	Payload []byte
}

// Result is what one call did: the messages to publish, in order, and the
// jobs whose stored record changed (to persist before publishing).
type Result struct {
	Messages []Message
	Changed  []string
}

// Engine holds every job and execution.
type Engine struct {
	opts     Options
	jobs     map[string]*job
	things   map[string]map[string]*execution // thing → job ID → execution
	lastExec int64                            // highest execution number handed out
	sent     map[string]sentState             // thing → what notify/notify-next last said
}

// sentState is what the thing's devices were last told, to send notify
// and notify-next only on a change, as AWS does.
type sentState struct {
	pending string // job IDs and statuses of the pending list
	next    string // job ID and execution number of $next
}

// job is one job and its executions; it is also the stored record.
type job struct {
	ID                       string                `json:"jobId"`
	Document                 json.RawMessage       `json:"document"`
	Description              string                `json:"description,omitempty"`
	Targets                  []string              `json:"targets"`
	Status                   JobStatus             `json:"status"`
	InProgressTimeoutMinutes int64                 `json:"inProgressTimeoutInMinutes,omitempty"`
	CreatedAt                time.Time             `json:"createdAt"`
	LastUpdatedAt            time.Time             `json:"lastUpdatedAt"`
	CompletedAt              time.Time             `json:"completedAt,omitzero"`
	ForceCanceled            bool                  `json:"forceCanceled,omitempty"`
	Comment                  string                `json:"comment,omitempty"`
	ReasonCode               string                `json:"reasonCode,omitempty"`
	Executions               map[string]*execution `json:"executions"`
}

// execution is one job's execution on one thing.
type execution struct {
	JobID           string            `json:"jobId"`
	Thing           string            `json:"thingName"`
	Status          Status            `json:"status"`
	StatusDetails   map[string]string `json:"statusDetails,omitempty"`
	QueuedAt        time.Time         `json:"queuedAt"`
	StartedAt       time.Time         `json:"startedAt,omitzero"`
	LastUpdatedAt   time.Time         `json:"lastUpdatedAt"`
	VersionNumber   int64             `json:"versionNumber"`
	ExecutionNumber int64             `json:"executionNumber"`
	// StepDeadline and InProgressDeadline are when an IN_PROGRESS
	// execution times out (zero = no timer).
	StepDeadline       time.Time `json:"stepDeadline,omitzero"`
	InProgressDeadline time.Time `json:"inProgressDeadline,omitzero"`
}

// New returns an empty engine.
func New(opts Options) *Engine {
	if opts.MaxDocumentBytes <= 0 {
		opts.MaxDocumentBytes = DefaultMaxDocumentBytes
	}
	return &Engine{opts: opts, jobs: map[string]*job{}, things: map[string]map[string]*execution{}, sent: map[string]sentState{}}
}

// MarshalJob returns the stored record of job id (false if there is none).
func (e *Engine) MarshalJob(id string) ([]byte, bool) {
	j := e.jobs[id]
	if j == nil {
		return nil, false
	}
	b, err := json.Marshal(j)
	if err != nil {
		panic(fmt.Sprintf("jobs: encode job %s: %v", id, err)) // plain data: cannot fail
	}
	return b, true
}

// Load adds a job from its stored record (before serving). Devices are
// not notified: they learn the state by asking, as after any reconnect.
func (e *Engine) Load(data []byte) error {
	var j job
	if err := json.Unmarshal(data, &j); err != nil {
		return fmt.Errorf("stored job record: %w", err)
	}
	if !validJobID(j.ID) || j.Executions == nil {
		return fmt.Errorf("stored job record %q: no valid job ID or executions", j.ID)
	}
	for thing, x := range j.Executions {
		if x == nil || x.Thing != thing || x.JobID != j.ID || !x.Status.valid() {
			return fmt.Errorf("stored job %s: bad execution for thing %q", j.ID, thing)
		}
		e.thingExecs(thing)[j.ID] = x
		e.lastExec = max(e.lastExec, x.ExecutionNumber)
	}
	e.jobs[j.ID] = &j
	for thing := range j.Executions {
		e.sent[thing] = e.state(thing)
	}
	return nil
}

// Jobs returns how many jobs the engine holds.
func (e *Engine) Jobs() int { return len(e.jobs) }

func (e *Engine) thingExecs(thing string) map[string]*execution {
	m := e.things[thing]
	if m == nil {
		m = map[string]*execution{}
		e.things[thing] = m
	}
	return m
}

// pending returns the thing's IN_PROGRESS executions (oldest start first)
// and QUEUED ones (oldest first): the order AWS starts them in.
func (e *Engine) pending(thing string) (inProgress, queued []*execution) {
	for _, x := range e.things[thing] {
		switch x.Status {
		case InProgress:
			inProgress = append(inProgress, x)
		case Queued:
			queued = append(queued, x)
		}
	}
	sortBy(inProgress, func(x *execution) time.Time { return x.StartedAt })
	sortBy(queued, func(x *execution) time.Time { return x.QueuedAt })
	return inProgress, queued
}

// sortBy orders by the time key, then execution number (times may tie).
func sortBy(xs []*execution, key func(*execution) time.Time) {
	sort.Slice(xs, func(a, b int) bool {
		ta, tb := key(xs[a]), key(xs[b])
		if !ta.Equal(tb) {
			return ta.Before(tb)
		}
		return xs[a].ExecutionNumber < xs[b].ExecutionNumber
	})
}

// next is the execution DescribeJobExecution $next returns, or nil.
func (e *Engine) next(thing string) *execution {
	ip, q := e.pending(thing)
	if len(ip) > 0 {
		return ip[0]
	}
	if len(q) > 0 {
		return q[0]
	}
	return nil
}

func (e *Engine) state(thing string) sentState {
	ip, q := e.pending(thing)
	var s sentState
	for _, x := range ip {
		s.pending += x.JobID + ":I,"
	}
	for _, x := range q {
		s.pending += x.JobID + ":Q,"
	}
	if n := e.next(thing); n != nil {
		s.next = fmt.Sprintf("%s#%d", n.JobID, n.ExecutionNumber)
	}
	return s
}

// change collects what one call did.
type change struct {
	res     Result
	things  map[string]bool
	changed map[string]bool
}

func newChange() *change { return &change{things: map[string]bool{}, changed: map[string]bool{}} }

func (c *change) touch(x *execution) {
	c.things[x.Thing] = true
	c.changed[x.JobID] = true
}

func (c *change) publish(topic string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("jobs: encode message for %s: %v", topic, err)) // plain data: cannot fail
	}
	c.res.Messages = append(c.res.Messages, Message{Topic: topic, Payload: b})
}

// finish completes jobs whose executions all ended, adds notify and
// notify-next for every thing whose pending list or next execution
// changed, and returns the result.
func (e *Engine) finish(c *change, now time.Time) Result {
	for id := range c.changed {
		j := e.jobs[id]
		if j == nil || j.Status != JobInProgress {
			continue
		}
		done := true
		for _, x := range j.Executions {
			if !x.Status.Terminal() {
				done = false
				break
			}
		}
		if done {
			j.Status, j.CompletedAt, j.LastUpdatedAt = JobCompleted, now, now
		}
	}
	things := make([]string, 0, len(c.things))
	for t := range c.things {
		things = append(things, t)
	}
	sort.Strings(things)
	for _, thing := range things {
		old, cur := e.sent[thing], e.state(thing)
		if cur.pending != old.pending {
			c.publish(deviceTopic(thing, "notify"), e.notifyBody(thing, now))
		}
		if cur.next != old.next {
			body := map[string]any{"timestamp": epoch(now)}
			if n := e.next(thing); n != nil {
				body["execution"] = e.executionBody(n, true, now)
			}
			c.publish(deviceTopic(thing, "notify-next"), body)
		}
		e.sent[thing] = cur
	}
	for id := range c.changed {
		c.res.Changed = append(c.res.Changed, id)
	}
	sort.Strings(c.res.Changed)
	return c.res
}

// Tick expires every IN_PROGRESS execution whose step or in-progress
// timer ran out by now (TIMED_OUT) and returns the notifications.
func (e *Engine) Tick(now time.Time) Result {
	c := newChange()
	e.expire(c, now)
	return e.finish(c, now)
}

// NextDeadline returns the earliest running timer (false if none).
func (e *Engine) NextDeadline() (time.Time, bool) {
	var first time.Time
	for _, execs := range e.things {
		for _, x := range execs {
			if x.Status != InProgress {
				continue
			}
			for _, d := range []time.Time{x.StepDeadline, x.InProgressDeadline} {
				if !d.IsZero() && (first.IsZero() || d.Before(first)) {
					first = d
				}
			}
		}
	}
	return first, !first.IsZero()
}

func (e *Engine) expire(c *change, now time.Time) {
	for _, execs := range e.things {
		for _, x := range execs {
			if x.Status != InProgress {
				continue
			}
			if due(x.StepDeadline, now) || due(x.InProgressDeadline, now) {
				e.setStatus(x, TimedOut, now)
				c.touch(x)
			}
		}
	}
}

func due(d, now time.Time) bool { return !d.IsZero() && !now.Before(d) }

// setStatus moves x to s, bumping its version and managing timers.
func (e *Engine) setStatus(x *execution, s Status, now time.Time) {
	if s == InProgress && x.Status == Queued {
		x.StartedAt = now
		if j := e.jobs[x.JobID]; j != nil && j.InProgressTimeoutMinutes > 0 {
			x.InProgressDeadline = now.Add(time.Duration(j.InProgressTimeoutMinutes) * time.Minute)
		}
	}
	if s.Terminal() {
		x.StepDeadline, x.InProgressDeadline = time.Time{}, time.Time{}
	}
	x.Status = s
	x.LastUpdatedAt = now
	x.VersionNumber++
}

// epoch is AWS's timestamp form: whole seconds since the epoch.
func epoch(t time.Time) int64 { return t.Unix() }

// executionBody is the JobExecution data type of the device API.
func (e *Engine) executionBody(x *execution, withDoc bool, now time.Time) map[string]any {
	b := map[string]any{
		"jobId": x.JobID, "thingName": x.Thing, "status": x.Status,
		"queuedAt": epoch(x.QueuedAt), "lastUpdatedAt": epoch(x.LastUpdatedAt),
		"versionNumber": x.VersionNumber, "executionNumber": x.ExecutionNumber,
	}
	if len(x.StatusDetails) > 0 {
		b["statusDetails"] = x.StatusDetails
	}
	if !x.StartedAt.IsZero() {
		b["startedAt"] = epoch(x.StartedAt)
	}
	if x.Status == InProgress {
		var first time.Time
		for _, d := range []time.Time{x.StepDeadline, x.InProgressDeadline} {
			if !d.IsZero() && (first.IsZero() || d.Before(first)) {
				first = d
			}
		}
		if !first.IsZero() {
			b["approximateSecondsBeforeTimedOut"] = max(0, int64(first.Sub(now).Round(time.Second)/time.Second))
		}
	}
	if withDoc {
		if j := e.jobs[x.JobID]; j != nil {
			b["jobDocument"] = j.Document
		}
	}
	return b
}

func stateBody(x *execution) map[string]any {
	b := map[string]any{"status": x.Status, "versionNumber": x.VersionNumber}
	if len(x.StatusDetails) > 0 {
		b["statusDetails"] = x.StatusDetails
	}
	return b
}

func summaryBody(x *execution) map[string]any {
	b := map[string]any{
		"jobId": x.JobID, "queuedAt": epoch(x.QueuedAt), "lastUpdatedAt": epoch(x.LastUpdatedAt),
		"versionNumber": x.VersionNumber, "executionNumber": x.ExecutionNumber,
	}
	if !x.StartedAt.IsZero() {
		b["startedAt"] = epoch(x.StartedAt)
	}
	return b
}

func summaries(xs []*execution) []map[string]any {
	out := make([]map[string]any, 0, len(xs))
	for _, x := range xs {
		out = append(out, summaryBody(x))
	}
	return out
}

// notifyBody is a notify message: {"timestamp", "jobs": {"IN_PROGRESS":
// […], "QUEUED": […]}}, with empty lists left out as AWS does.
func (e *Engine) notifyBody(thing string, now time.Time) map[string]any {
	ip, q := e.pending(thing)
	jobs := map[string]any{}
	if len(ip) > 0 {
		jobs["IN_PROGRESS"] = summaries(ip)
	}
	if len(q) > 0 {
		jobs["QUEUED"] = summaries(q)
	}
	return map[string]any{"timestamp": epoch(now), "jobs": jobs}
}
