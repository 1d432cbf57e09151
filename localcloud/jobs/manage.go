package jobs

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/pinshadow/pinshadow/shadowdoc"
)

// The management API stands in for AWS's HTTPS control plane (CreateJob,
// ListJobs, DescribeJob, CancelJob, …). It is MQTT request/response on
// reserved topics, so that it reaches the service the same way devices do,
// also when the service is attached to an external broker: publish a
// request to ManagementPrefix+op (op: create, list, describe, cancel,
// remove) with a clientToken, and the reply comes on the same topic plus
// /accepted (a Reply) or /rejected (a Reply with Code and Message).
const ManagementPrefix = "$pinshadow/jobs/"

// Management operations.
const (
	OpCreate   = "create"
	OpList     = "list"
	OpDescribe = "describe"
	OpCancel   = "cancel"
	OpRemove   = "remove"
)

// CreateRequest creates a job with one execution per target thing.
type CreateRequest struct {
	ClientToken string `json:"clientToken,omitempty"`
	// JobID is the new job's ID (1–64 of a-z A-Z 0-9 _ -).
	JobID string `json:"jobId"`
	// Targets are the thing names (1–1000).
	Targets []string `json:"targets"`
	// Document is the job document, a JSON object.
	Document json.RawMessage `json:"document"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// TimeoutConfig limits how long an execution may stay IN_PROGRESS.
	TimeoutConfig *TimeoutConfig `json:"timeoutConfig,omitempty"`
}

// TimeoutConfig is AWS's job timeoutConfig.
type TimeoutConfig struct {
	// InProgressTimeoutInMinutes (1–10080) times an execution out that
	// stays IN_PROGRESS longer; the device cannot extend it.
	InProgressTimeoutInMinutes int64 `json:"inProgressTimeoutInMinutes"`
}

// ListRequest lists all jobs, or with ThingName the thing's executions;
// Status filters either (a job or an execution status).
type ListRequest struct {
	ClientToken string `json:"clientToken,omitempty"`
	ThingName   string `json:"thingName,omitempty"`
	Status      string `json:"status,omitempty"`
}

// DescribeRequest describes a job, or with ThingName its execution on that
// thing.
type DescribeRequest struct {
	ClientToken string `json:"clientToken,omitempty"`
	JobID       string `json:"jobId"`
	ThingName   string `json:"thingName,omitempty"`
}

// CancelRequest cancels a job (CancelJob) or, with ThingName, one
// execution (CancelJobExecution). Without Force only QUEUED executions are
// cancelled; IN_PROGRESS ones continue (job) or the request is rejected
// (execution). For OpRemove the execution becomes REMOVED instead.
type CancelRequest struct {
	ClientToken     string `json:"clientToken,omitempty"`
	JobID           string `json:"jobId"`
	ThingName       string `json:"thingName,omitempty"`
	Force           bool   `json:"force,omitempty"`
	ExpectedVersion int64  `json:"expectedVersion,omitempty"`
	Comment         string `json:"comment,omitempty"`
	ReasonCode      string `json:"reasonCode,omitempty"`
}

// JobInfo describes a job. Times are seconds since the epoch.
type JobInfo struct {
	JobID                      string          `json:"jobId"`
	Status                     JobStatus       `json:"status"`
	Description                string          `json:"description,omitempty"`
	Targets                    []string        `json:"targets"`
	Document                   json.RawMessage `json:"document,omitempty"`
	CreatedAt                  int64           `json:"createdAt"`
	LastUpdatedAt              int64           `json:"lastUpdatedAt"`
	CompletedAt                int64           `json:"completedAt,omitempty"`
	InProgressTimeoutInMinutes int64           `json:"inProgressTimeoutInMinutes,omitempty"`
	ForceCanceled              bool            `json:"forceCanceled,omitempty"`
	Comment                    string          `json:"comment,omitempty"`
	ReasonCode                 string          `json:"reasonCode,omitempty"`
	// ExecutionCounts counts the executions by status.
	ExecutionCounts map[Status]int `json:"executionCounts"`
	// Executions are the job's executions (describe only).
	Executions []ExecutionInfo `json:"executions,omitempty"`
}

// ExecutionInfo describes one execution. Times are seconds since the
// epoch (0 = not yet).
type ExecutionInfo struct {
	JobID                            string            `json:"jobId"`
	ThingName                        string            `json:"thingName"`
	Status                           Status            `json:"status"`
	StatusDetails                    map[string]string `json:"statusDetails,omitempty"`
	QueuedAt                         int64             `json:"queuedAt"`
	StartedAt                        int64             `json:"startedAt,omitempty"`
	LastUpdatedAt                    int64             `json:"lastUpdatedAt"`
	VersionNumber                    int64             `json:"versionNumber"`
	ExecutionNumber                  int64             `json:"executionNumber"`
	ApproximateSecondsBeforeTimedOut int64             `json:"approximateSecondsBeforeTimedOut,omitempty"`
	JobDocument                      json.RawMessage   `json:"jobDocument,omitempty"`
}

// Reply is every management reply; the fields present depend on the
// operation. Code and Message are set on /rejected.
type Reply struct {
	ClientToken string          `json:"clientToken,omitempty"`
	Timestamp   int64           `json:"timestamp"`
	Job         *JobInfo        `json:"job,omitempty"`
	Jobs        []JobInfo       `json:"jobs,omitempty"`
	Execution   *ExecutionInfo  `json:"execution,omitempty"`
	Executions  []ExecutionInfo `json:"executions,omitempty"`
	Code        string          `json:"code,omitempty"`
	Message     string          `json:"message,omitempty"`
}

func (e *Engine) handleManagement(topic, op string, payload []byte, now time.Time) Result {
	c := newChange()
	e.expire(c, now)
	var token struct {
		ClientToken string `json:"clientToken"`
	}
	_ = json.Unmarshal(payload, &token) // best effort, for the rejection
	decode := func(v any) *Error {
		d := json.NewDecoder(bytes.NewReader(payload))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return reject(CodeInvalidJSON, "%s request: %v", op, err)
		}
		return nil
	}
	var rep Reply
	var err *Error
	switch op {
	case OpCreate:
		var r CreateRequest
		if err = decode(&r); err == nil {
			rep.Job, err = e.create(c, r, now)
		}
	case OpList:
		var r ListRequest
		if err = decode(&r); err == nil {
			rep.Jobs, rep.Executions, err = e.list(r, now)
		}
	case OpDescribe:
		var r DescribeRequest
		if err = decode(&r); err == nil {
			rep.Job, rep.Execution, err = e.describe(r, now)
		}
	case OpCancel, OpRemove:
		var r CancelRequest
		if err = decode(&r); err == nil {
			rep.Job, rep.Execution, err = e.cancel(c, r, op == OpRemove, now)
		}
	default:
		err = reject(CodeInvalidTopic, "unknown management operation %q (want create, list, describe, cancel or remove)", op)
	}
	rep.ClientToken, rep.Timestamp = token.ClientToken, epoch(now)
	if err != nil {
		rep = Reply{ClientToken: token.ClientToken, Timestamp: epoch(now), Code: err.Code, Message: err.Message}
		c.publish(topic+"/rejected", rep)
	} else {
		c.publish(topic+"/accepted", rep)
	}
	return e.finish(c, now)
}

// create is CreateJob: one QUEUED execution per target.
func (e *Engine) create(c *change, r CreateRequest, now time.Time) (*JobInfo, *Error) {
	if !validJobID(r.JobID) {
		return nil, reject(CodeInvalidRequest, "job ID %q: want 1–64 characters of a-z A-Z 0-9 _ -", r.JobID)
	}
	if e.jobs[r.JobID] != nil {
		return nil, reject(CodeResourceAlreadyExists, "job %s already exists", r.JobID)
	}
	if len(r.Targets) == 0 || len(r.Targets) > maxTargets {
		return nil, reject(CodeInvalidRequest, "job %s: %d targets; want 1–%d thing names", r.JobID, len(r.Targets), maxTargets)
	}
	targets := slices.Clone(r.Targets)
	slices.Sort(targets)
	targets = slices.Compact(targets)
	for _, t := range targets {
		if !shadowdoc.ValidThingName(t) {
			return nil, reject(CodeInvalidRequest, "target thing name %q: want 1–128 characters of a-z A-Z 0-9 : _ -", t)
		}
	}
	doc := bytes.TrimSpace(r.Document)
	if len(doc) == 0 || doc[0] != '{' || !json.Valid(doc) {
		return nil, reject(CodeInvalidRequest, "job %s: the document must be a JSON object", r.JobID)
	}
	if len(doc) > e.opts.MaxDocumentBytes {
		return nil, reject(CodeInvalidRequest, "job %s: the document is %d bytes; at most %d allowed", r.JobID, len(doc), e.opts.MaxDocumentBytes)
	}
	if len(r.Description) > maxDescription {
		return nil, reject(CodeInvalidRequest, "job %s: the description is %d bytes; at most %d allowed", r.JobID, len(r.Description), maxDescription)
	}
	var timeout int64
	if r.TimeoutConfig != nil {
		timeout = r.TimeoutConfig.InProgressTimeoutInMinutes
		if timeout < 1 || timeout > maxInProgressTimeout {
			return nil, reject(CodeInvalidRequest, "job %s: inProgressTimeoutInMinutes %d: want 1–%d", r.JobID, timeout, maxInProgressTimeout)
		}
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, doc) // valid: checked above
	j := &job{
		ID: r.JobID, Document: compact.Bytes(), Description: r.Description, Targets: targets,
		Status: JobInProgress, InProgressTimeoutMinutes: timeout, CreatedAt: now, LastUpdatedAt: now,
		Executions: map[string]*execution{},
	}
	e.jobs[j.ID] = j
	for _, t := range targets {
		e.lastExec++
		x := &execution{JobID: j.ID, Thing: t, Status: Queued, QueuedAt: now, LastUpdatedAt: now, VersionNumber: 1, ExecutionNumber: e.lastExec}
		j.Executions[t] = x
		e.thingExecs(t)[j.ID] = x
		c.touch(x)
	}
	return e.jobInfo(j, false, now), nil
}

// list is ListJobs, or ListJobExecutionsForThing with r.ThingName.
func (e *Engine) list(r ListRequest, now time.Time) ([]JobInfo, []ExecutionInfo, *Error) {
	if r.ThingName != "" {
		if !shadowdoc.ValidThingName(r.ThingName) {
			return nil, nil, reject(CodeInvalidRequest, "thing name %q: want 1–128 characters of a-z A-Z 0-9 : _ -", r.ThingName)
		}
		execs := e.things[r.ThingName]
		if len(execs) == 0 {
			return nil, nil, reject(CodeResourceNotFound, "thing %s has no job executions", r.ThingName)
		}
		xs := make([]*execution, 0, len(execs))
		for _, x := range execs {
			if r.Status == "" || string(x.Status) == r.Status {
				xs = append(xs, x)
			}
		}
		sortBy(xs, func(x *execution) time.Time { return x.QueuedAt })
		out := make([]ExecutionInfo, 0, len(xs))
		for _, x := range xs {
			out = append(out, e.executionInfo(x, false, now))
		}
		return nil, out, nil
	}
	js := make([]*job, 0, len(e.jobs))
	for _, j := range e.jobs {
		if r.Status == "" || string(j.Status) == r.Status {
			js = append(js, j)
		}
	}
	sort.Slice(js, func(a, b int) bool {
		if !js[a].CreatedAt.Equal(js[b].CreatedAt) {
			return js[a].CreatedAt.Before(js[b].CreatedAt)
		}
		return js[a].ID < js[b].ID
	})
	out := make([]JobInfo, 0, len(js))
	for _, j := range js {
		out = append(out, *e.jobInfo(j, false, now))
	}
	return out, nil, nil
}

// describe is DescribeJob, or DescribeJobExecution with r.ThingName.
func (e *Engine) describe(r DescribeRequest, now time.Time) (*JobInfo, *ExecutionInfo, *Error) {
	j, x, err := e.find(r.JobID, r.ThingName)
	if err != nil {
		return nil, nil, err
	}
	if x != nil {
		info := e.executionInfo(x, true, now)
		return nil, &info, nil
	}
	return e.jobInfo(j, true, now), nil, nil
}

func (e *Engine) find(jobID, thing string) (*job, *execution, *Error) {
	j := e.jobs[jobID]
	if j == nil {
		return nil, nil, reject(CodeResourceNotFound, "job %q does not exist", jobID)
	}
	if thing == "" {
		return j, nil, nil
	}
	x := j.Executions[thing]
	if x == nil {
		return nil, nil, reject(CodeResourceNotFound, "job %s has no execution on thing %q (targets: %v)", jobID, thing, j.Targets)
	}
	return j, x, nil
}

// cancel is CancelJob, or CancelJobExecution with r.ThingName; remove
// makes the execution REMOVED instead of CANCELED.
func (e *Engine) cancel(c *change, r CancelRequest, remove bool, now time.Time) (*JobInfo, *ExecutionInfo, *Error) {
	j, x, err := e.find(r.JobID, r.ThingName)
	if err != nil {
		return nil, nil, err
	}
	to := Canceled
	if remove {
		to = Removed
	}
	if x != nil {
		if r.ExpectedVersion != 0 && r.ExpectedVersion != x.VersionNumber {
			return nil, nil, reject(CodeVersionMismatch, "expected version %d, but the execution is at version %d", r.ExpectedVersion, x.VersionNumber)
		}
		switch {
		case x.Status.Terminal():
			return nil, nil, reject(CodeInvalidStateTransition, "job %s on thing %s is already %s", j.ID, x.Thing, x.Status)
		case x.Status == InProgress && !r.Force:
			return nil, nil, reject(CodeInvalidStateTransition, "job %s on thing %s is IN_PROGRESS; use force to stop it", j.ID, x.Thing)
		}
		e.setStatus(x, to, now)
		c.touch(x)
		info := e.executionInfo(x, false, now)
		return nil, &info, nil
	}
	if remove {
		return nil, nil, reject(CodeInvalidRequest, "remove needs a thing name")
	}
	switch {
	case j.Status == JobCompleted:
		return nil, nil, reject(CodeInvalidStateTransition, "job %s is already COMPLETED", j.ID)
	case j.Status == JobCanceled && (!r.Force || j.ForceCanceled):
		return nil, nil, reject(CodeInvalidStateTransition, "job %s is already CANCELED", j.ID)
	}
	j.Status, j.LastUpdatedAt, j.Comment, j.ReasonCode = JobCanceled, now, r.Comment, r.ReasonCode
	j.ForceCanceled = r.Force
	for _, x := range j.Executions {
		if x.Status == Queued || x.Status == InProgress && r.Force {
			e.setStatus(x, Canceled, now)
			c.touch(x)
		}
	}
	c.changed[j.ID] = true
	return e.jobInfo(j, false, now), nil, nil
}

func (e *Engine) jobInfo(j *job, detail bool, now time.Time) *JobInfo {
	info := &JobInfo{
		JobID: j.ID, Status: j.Status, Description: j.Description, Targets: j.Targets,
		CreatedAt: epoch(j.CreatedAt), LastUpdatedAt: epoch(j.LastUpdatedAt),
		InProgressTimeoutInMinutes: j.InProgressTimeoutMinutes, ForceCanceled: j.ForceCanceled,
		Comment: j.Comment, ReasonCode: j.ReasonCode, ExecutionCounts: map[Status]int{},
	}
	if !j.CompletedAt.IsZero() {
		info.CompletedAt = epoch(j.CompletedAt)
	}
	for _, x := range j.Executions {
		info.ExecutionCounts[x.Status]++
	}
	if detail {
		info.Document = j.Document
		for _, t := range j.Targets {
			info.Executions = append(info.Executions, e.executionInfo(j.Executions[t], false, now))
		}
	}
	return info
}

func (e *Engine) executionInfo(x *execution, withDoc bool, now time.Time) ExecutionInfo {
	b := e.executionBody(x, withDoc, now)
	info := ExecutionInfo{
		JobID: x.JobID, ThingName: x.Thing, Status: x.Status, StatusDetails: x.StatusDetails,
		QueuedAt: epoch(x.QueuedAt), LastUpdatedAt: epoch(x.LastUpdatedAt),
		VersionNumber: x.VersionNumber, ExecutionNumber: x.ExecutionNumber,
	}
	if !x.StartedAt.IsZero() {
		info.StartedAt = epoch(x.StartedAt)
	}
	if s, ok := b["approximateSecondsBeforeTimedOut"].(int64); ok {
		info.ApproximateSecondsBeforeTimedOut = s
	}
	if withDoc {
		info.JobDocument = e.jobs[x.JobID].Document
	}
	return info
}
