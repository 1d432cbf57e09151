package shadowsync

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinels a *RejectedError matches with errors.Is, by AWS error code.
var (
	// ErrBadRequest: 400, the request document is invalid (bad JSON, no
	// state, too deep, invalid clientToken or version). Retrying the same
	// request cannot succeed.
	ErrBadRequest = errors.New("shadow request rejected as invalid (400)")
	// ErrUnauthorized: 401.
	ErrUnauthorized = errors.New("shadow request unauthorized (401)")
	// ErrForbidden: 403, the device's policy does not allow the request.
	ErrForbidden = errors.New("shadow request forbidden (403)")
	// ErrNotFound: 404, the shadow does not exist.
	ErrNotFound = errors.New("shadow not found (404)")
	// ErrConflict: 409, the update's version is not the shadow's current
	// version; get the document and retry.
	ErrConflict = errors.New("shadow version conflict (409)")
	// ErrTooLarge: 413, the resulting document exceeds the size limit.
	ErrTooLarge = errors.New("shadow document too large (413)")
	// ErrUnsupportedEncoding: 415, the payload is not UTF-8.
	ErrUnsupportedEncoding = errors.New("shadow payload encoding unsupported (415)")
	// ErrThrottled: 429, too many requests; retry later.
	ErrThrottled = errors.New("shadow request throttled (429)")
	// ErrServiceFailure: 500 or 503, the service failed; retry later.
	ErrServiceFailure = errors.New("shadow service failure (5xx)")

	// ErrTimeout is matched by every *TimeoutError.
	ErrTimeout = errors.New("shadow request timed out")
	// ErrClosed is returned by requests on a closed Client or Shadow.
	ErrClosed = errors.New("shadow client closed")
)

// RejectedError is a request the shadow service answered on its /rejected
// topic.
type RejectedError struct {
	// Op is "get", "update" or "delete".
	Op string
	// Shadow identifies the shadow.
	Shadow Key
	// Code is AWS's error code (an HTTP status: 400, 404, 409, …).
	Code int
	// Message is AWS's error message, verbatim.
	Message string
	// ClientToken is the request's token.
	ClientToken string
}

// Error says which request was rejected, with AWS's code and message.
func (e *RejectedError) Error() string {
	return fmt.Sprintf("shadow %s %s rejected: %d %s", e.Shadow, e.Op, e.Code, e.Message)
}

// Is matches the sentinel for e's code.
func (e *RejectedError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Code == 400
	case ErrUnauthorized:
		return e.Code == 401
	case ErrForbidden:
		return e.Code == 403
	case ErrNotFound:
		return e.Code == 404
	case ErrConflict:
		return e.Code == 409
	case ErrTooLarge:
		return e.Code == 413
	case ErrUnsupportedEncoding:
		return e.Code == 415
	case ErrThrottled:
		return e.Code == 429
	case ErrServiceFailure:
		return e.Code >= 500
	}
	return false
}

// Temporary reports whether the same request may succeed later (throttling
// or a service failure).
func (e *RejectedError) Temporary() bool { return e.Code == 429 || e.Code >= 500 }

// TimeoutError is a request that got no response with its clientToken in
// time: the request timeout elapsed or the caller's context ended.
type TimeoutError struct {
	// Op is "get", "update" or "delete".
	Op string
	// Shadow identifies the shadow.
	Shadow Key
	// ClientToken is the request's token; a late response with it is
	// ignored.
	ClientToken string
	// After is how long the request waited.
	After time.Duration
	// Cause is the context error when the caller's context ended first,
	// else nil.
	Cause error
}

// Error says which request got no response, and what to check.
func (e *TimeoutError) Error() string {
	msg := fmt.Sprintf("shadow %s %s: no response for clientToken %q after %v (is the device connected and subscribed, and is the shadow service up?)",
		e.Shadow, e.Op, e.ClientToken, e.After.Round(time.Millisecond))
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
