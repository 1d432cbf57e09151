package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Status is a job execution's status, as AWS spells it.
type Status string

// The job execution statuses of AWS IoT Jobs.
const (
	StatusQueued     Status = "QUEUED"
	StatusInProgress Status = "IN_PROGRESS"
	StatusSucceeded  Status = "SUCCEEDED"
	StatusFailed     Status = "FAILED"
	StatusTimedOut   Status = "TIMED_OUT"
	StatusRejected   Status = "REJECTED"
	StatusRemoved    Status = "REMOVED"
	StatusCanceled   Status = "CANCELED"
)

// Terminal reports whether no further update can change an execution in
// status s (every status but QUEUED and IN_PROGRESS).
func (s Status) Terminal() bool {
	return s != StatusQueued && s != StatusInProgress && s.Valid()
}

// Valid reports whether s is one of the eight AWS statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusQueued, StatusInProgress, StatusSucceeded, StatusFailed,
		StatusTimedOut, StatusRejected, StatusRemoved, StatusCanceled:
		return true
	}
	return false
}

// JobExecution is one job's execution on this thing (AWS's JobExecution
// data type of the device API).
type JobExecution struct {
	// JobID is the job's identifier.
	JobID string
	// ThingName is the thing the execution runs on.
	ThingName string
	// Status is the execution's status.
	Status Status
	// StatusDetails is the device's own progress record (name → value),
	// as last set by an update or start-next.
	StatusDetails map[string]string
	// QueuedAt, StartedAt and LastUpdatedAt are when the execution was
	// queued, first went IN_PROGRESS and last changed (zero when unset).
	QueuedAt      time.Time
	StartedAt     time.Time
	LastUpdatedAt time.Time
	// VersionNumber increases by one on every change of the execution; an
	// update may name it as ExpectedVersion.
	VersionNumber int64
	// ExecutionNumber identifies this execution of the job on the thing.
	ExecutionNumber int64
	// ApproximateSecondsBeforeTimedOut is how long an IN_PROGRESS
	// execution has left before its step or in-progress timeout (0 = no
	// timer).
	ApproximateSecondsBeforeTimedOut int64
	// JobDocument is the job document (nil when the request left it out).
	JobDocument json.RawMessage
}

// JobExecutionState is the short form of an execution that update replies
// and rejections carry.
type JobExecutionState struct {
	Status        Status
	StatusDetails map[string]string
	VersionNumber int64
}

// JobExecutionSummary is one entry of a pending list (get and notify).
type JobExecutionSummary struct {
	JobID           string
	QueuedAt        time.Time
	StartedAt       time.Time
	LastUpdatedAt   time.Time
	VersionNumber   int64
	ExecutionNumber int64
}

// PendingJobs is the thing's list of executions that are not terminal: the
// reply to GetPending and the payload of every notify message.
type PendingJobs struct {
	// InProgress are the IN_PROGRESS executions, oldest first.
	InProgress []JobExecutionSummary
	// Queued are the QUEUED executions in the order they will be started.
	Queued []JobExecutionSummary
	// Timestamp is when the service sent the list.
	Timestamp time.Time
}

// NextJob is a notify-next message: the execution the thing should work on
// next (IN_PROGRESS before QUEUED), with its job document.
type NextJob struct {
	// Execution is nil when the thing has no pending execution left.
	Execution *JobExecution
	// Timestamp is when the service sent the message.
	Timestamp time.Time
	// Resync is true when the client fetched the execution itself after a
	// (re)connect (a notify-next sent while offline is lost) rather than
	// receiving a notify-next message.
	Resync bool
}

// UpdateResult is the reply to an accepted Update.
type UpdateResult struct {
	// ExecutionState is the execution after the update; only with
	// Update.IncludeJobExecutionState.
	ExecutionState *JobExecutionState
	// JobDocument is the job document; only with Update.IncludeJobDocument.
	JobDocument json.RawMessage
	// Timestamp is when the service sent the reply.
	Timestamp time.Time
}

// DescribeOptions are the optional fields of a DescribeJobExecution.
type DescribeOptions struct {
	// ExecutionNumber selects one execution (0 = the latest).
	ExecutionNumber int64
	// OmitJobDocument sends includeJobDocument=false (AWS's default, and
	// this client's, is to include it).
	OmitJobDocument bool
}

// StartNextOptions are the optional fields of a
// StartNextPendingJobExecution.
type StartNextOptions struct {
	// StatusDetails replace the execution's status details.
	StatusDetails map[string]string
	// StepTimeoutInMinutes starts a step timer (1–10080; 0 = none): the
	// execution goes TIMED_OUT unless updated before it expires.
	StepTimeoutInMinutes int64
}

// Update is an UpdateJobExecution request.
type Update struct {
	// Status is the new status: IN_PROGRESS, SUCCEEDED, FAILED or REJECTED
	// (the device may also re-send the current status to refresh details
	// or the step timer).
	Status Status
	// StatusDetails replace the execution's status details (nil = keep).
	StatusDetails map[string]string
	// ExpectedVersion, when > 0, makes the update fail with
	// ErrVersionMismatch unless it equals the execution's VersionNumber.
	ExpectedVersion int64
	// ExecutionNumber, when > 0, names the execution (0 = the latest).
	ExecutionNumber int64
	// IncludeJobExecutionState asks for the execution's state in the reply.
	IncludeJobExecutionState bool
	// IncludeJobDocument asks for the job document in the reply.
	IncludeJobDocument bool
	// StepTimeoutInMinutes sets (re)starts the step timer (0 = leave it;
	// -1 cancels it, as AWS defines).
	StepTimeoutInMinutes int64
}

// number reads a JSON number that may arrive as a string (the v1 Python
// SDK sent "expectedVersion": "3"). It accepts integers only (AWS's
// versions, execution numbers and minutes are integers).
func number(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s: not an integer", raw)
	}
	return int64(f), nil
}

// epoch reads AWS's timestamps: seconds (or milliseconds) since the epoch
// as a number (possibly fractional, possibly a string); 0 or absent is the
// zero time.
func epoch(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, nil
		}
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil && i > 1e11 && i < 1e14 {
		return time.UnixMilli(i), nil // milliseconds, as some AWS examples show
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f < 0 || f > 1e14 {
		return time.Time{}, fmt.Errorf("timestamp %s: want seconds since the epoch", raw)
	}
	if f == 0 {
		return time.Time{}, nil
	}
	if f > 1e11 {
		// Milliseconds, as some of AWS's examples show: seconds would be
		// past the year 5000.
		f /= 1000
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}
