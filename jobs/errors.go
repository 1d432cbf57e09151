package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// AWS's error codes for rejected Jobs requests (the "code" field of a
// /rejected message).
const (
	CodeInvalidTopic           = "InvalidTopic"
	CodeInvalidJSON            = "InvalidJson"
	CodeInvalidRequest         = "InvalidRequest"
	CodeInvalidStateTransition = "InvalidStateTransition"
	CodeResourceNotFound       = "ResourceNotFound"
	CodeVersionMismatch        = "VersionMismatch"
	CodeInternalError          = "InternalError"
	CodeRequestThrottled       = "RequestThrottled"
	CodeTerminalStateReached   = "TerminalStateReached"
	// CodeResourceAlreadyExists is the local cloud's management API code
	// for creating a job whose ID is taken (AWS's control plane:
	// ResourceAlreadyExistsException).
	CodeResourceAlreadyExists = "ResourceAlreadyExists"
)

// Sentinels a *RejectedError matches with errors.Is, one per AWS code.
var (
	// ErrInvalidTopic: the request was sent to a topic the Jobs service
	// does not know.
	ErrInvalidTopic = errors.New("jobs request rejected: invalid topic (InvalidTopic)")
	// ErrInvalidJSON: the request payload is not valid JSON.
	ErrInvalidJSON = errors.New("jobs request rejected: invalid JSON (InvalidJson)")
	// ErrInvalidRequest: a field is missing, malformed or out of range.
	ErrInvalidRequest = errors.New("jobs request rejected: invalid request (InvalidRequest)")
	// ErrInvalidStateTransition: the update asks for a status a device
	// cannot set (QUEUED, TIMED_OUT, CANCELED, REMOVED); from the Manager,
	// a cancel of a finished job or of an IN_PROGRESS execution without
	// force.
	ErrInvalidStateTransition = errors.New("jobs request rejected: invalid state transition (InvalidStateTransition)")
	// ErrResourceNotFound: no such job or execution for this thing.
	ErrResourceNotFound = errors.New("jobs request rejected: job or execution not found (ResourceNotFound)")
	// ErrVersionMismatch: ExpectedVersion is not the execution's current
	// version; describe it and retry.
	ErrVersionMismatch = errors.New("jobs request rejected: version mismatch (VersionMismatch)")
	// ErrInternalError: the service failed; retry later.
	ErrInternalError = errors.New("jobs request rejected: internal error (InternalError)")
	// ErrRequestThrottled: too many requests; retry later.
	ErrRequestThrottled = errors.New("jobs request rejected: throttled (RequestThrottled)")
	// ErrTerminalStateReached: the execution is already terminal
	// (SUCCEEDED, FAILED, REJECTED, TIMED_OUT, CANCELED or REMOVED) and
	// cannot be updated; the job may have been cancelled or timed out.
	ErrTerminalStateReached = errors.New("jobs request rejected: execution already terminal (TerminalStateReached)")

	// ErrAlreadyExists: a job with that ID exists (Manager.Create).
	ErrAlreadyExists = errors.New("jobs request rejected: job already exists (ResourceAlreadyExists)")

	// ErrTimeout is matched by every *TimeoutError.
	ErrTimeout = errors.New("jobs request timed out")
	// ErrClosed is returned by requests on a closed Client.
	ErrClosed = errors.New("jobs client closed")
)

var sentinels = map[string]error{
	CodeInvalidTopic:           ErrInvalidTopic,
	CodeInvalidJSON:            ErrInvalidJSON,
	CodeInvalidRequest:         ErrInvalidRequest,
	CodeInvalidStateTransition: ErrInvalidStateTransition,
	CodeResourceNotFound:       ErrResourceNotFound,
	CodeVersionMismatch:        ErrVersionMismatch,
	CodeInternalError:          ErrInternalError,
	CodeRequestThrottled:       ErrRequestThrottled,
	CodeTerminalStateReached:   ErrTerminalStateReached,
	CodeResourceAlreadyExists:  ErrAlreadyExists,
}

// RejectedError is a request the Jobs service answered on its /rejected
// topic.
type RejectedError struct {
	// Op is "get" (pending list), "start-next", "describe" or "update";
	// for a Manager request "create", "list", "describe", "cancel" or
	// "remove".
	Op string
	// Thing is the thing name ("" for a Manager request).
	Thing string
	// JobID is the job the request named ("" for get and start-next;
	// "$next" for a describe of the next execution).
	JobID string
	// Code is AWS's error code, e.g. "VersionMismatch" (Code* constants).
	Code string
	// Message is AWS's error message, verbatim.
	Message string
	// ClientToken is the request's token.
	ClientToken string
	// ExecutionState is the execution's current state when AWS sent it
	// (VersionMismatch and state errors); nil otherwise.
	ExecutionState *JobExecutionState
	// Timestamp is when the service sent the rejection.
	Timestamp time.Time
}

// Error says which request was rejected, with AWS's code and message.
func (e *RejectedError) Error() string {
	what := e.Op
	if e.JobID != "" {
		what = "job " + e.JobID + " " + e.Op
	}
	if e.Thing != "" {
		what = "thing " + e.Thing + ": " + what
	}
	msg := fmt.Sprintf("jobs: %s rejected: %s: %s", what, e.Code, e.Message)
	if e.ExecutionState != nil {
		msg += fmt.Sprintf(" (execution is %s, version %d)", e.ExecutionState.Status, e.ExecutionState.VersionNumber)
	}
	return msg
}

// Is matches the sentinel for e's code.
func (e *RejectedError) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// Temporary reports whether the same request may succeed later
// (throttling or an internal error).
func (e *RejectedError) Temporary() bool {
	return e.Code == CodeRequestThrottled || e.Code == CodeInternalError
}

// TimeoutError is a request that got no reply with its clientToken in
// time: the request timeout elapsed or the caller's context ended.
type TimeoutError struct {
	// Op is "get", "start-next", "describe" or "update".
	Op string
	// Thing is the thing name; JobID the job the request named.
	Thing, JobID string
	// ClientToken is the request's token; a late reply with it is ignored.
	ClientToken string
	// After is how long the request waited.
	After time.Duration
	// Cause is the context error when the caller's context ended first,
	// else nil.
	Cause error
}

// Error says which request got no reply, and what to check.
func (e *TimeoutError) Error() string {
	what := e.Op
	if e.JobID != "" {
		what = "job " + e.JobID + " " + e.Op
	}
	if e.Thing != "" {
		what = "thing " + e.Thing + ": " + what
	}
	msg := fmt.Sprintf("jobs: %s: no reply for clientToken %q after %v (is the connection up, and is the Jobs service running?)",
		what, e.ClientToken, e.After.Round(time.Millisecond))
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Is matches ErrTimeout, and context.Canceled or context.DeadlineExceeded
// when the caller's context ended the wait.
func (e *TimeoutError) Is(target error) bool {
	if target == ErrTimeout {
		return true
	}
	return e.Cause != nil && (target == context.Canceled || target == context.DeadlineExceeded) && errors.Is(e.Cause, target)
}
