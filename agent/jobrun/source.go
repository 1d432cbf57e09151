package jobrun

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Source is the AWS IoT Jobs service as the runner uses it: package jobs
// over the agent's one connection in the agent, a fake in tests.
type Source interface {
	// StartNext starts the next pending execution (one IN_PROGRESS first,
	// else the oldest QUEUED) with the given step timeout. It returns nil,
	// nil when there is none.
	StartNext(ctx context.Context, stepTimeout time.Duration) (*Execution, error)
	// Update sends a status. An error wrapping ErrRefused means the service
	// will never accept it (TerminalStateReached, VersionMismatch, the
	// execution is gone): the runner drops it. Any other error is retried.
	Update(ctx context.Context, u Update) error
	// Next receives when a next execution may be waiting: a notify-next
	// arrived or the connection came back. The channel should buffer one
	// signal and drop the rest.
	Next() <-chan struct{}
}

// Describer is implemented by sources that can say what status an
// execution has in the service. At each Next signal during an execution the
// runner asks, so a job cancelled (or timed out) in the cloud is stopped at
// once rather than at its next progress update.
type Describer interface {
	Describe(ctx context.Context, jobID string) (Status, error)
}

// ErrRefused wraps an Update error the service will never accept.
var ErrRefused = errors.New("job update refused for good")

// Status is a job execution status.
type Status string

// Execution statuses the runner sends (and the service's own).
const (
	Queued     Status = "QUEUED"
	InProgress Status = "IN_PROGRESS"
	Succeeded  Status = "SUCCEEDED"
	Failed     Status = "FAILED"
	Rejected   Status = "REJECTED"
	TimedOut   Status = "TIMED_OUT"
	Canceled   Status = "CANCELED"
	Removed    Status = "REMOVED"
)

// Terminal reports whether s ends an execution.
func (s Status) Terminal() bool {
	switch s {
	case Succeeded, Failed, Rejected, TimedOut, Canceled, Removed:
		return true
	}
	return false
}

// Execution is a started job execution.
type Execution struct {
	JobID           string
	ExecutionNumber int64
	// Status is the service's status when started (IN_PROGRESS).
	Status Status
	// Document is the job document.
	Document json.RawMessage
	// Details are the statusDetails the execution already had.
	Details Details
}

// Update is one status update of an execution.
type Update struct {
	JobID           string
	ExecutionNumber int64
	Status          Status
	Details         Details
	// StepTimeout, when > 0, resets the service's step timer (IN_PROGRESS).
	StepTimeout time.Duration
}
