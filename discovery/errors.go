package discovery

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors callers act on; test with errors.Is. Every HTTP status
// other than 200 is a *StatusError, which matches the sentinel of its
// status where there is one.
var (
	// ErrBadRequest (400): the request is malformed, e.g. an invalid thing
	// name. Retrying cannot help.
	ErrBadRequest = errors.New("discovery: bad request (400)")
	// ErrUnauthorized (401): the certificate is not accepted or its policy
	// does not allow greengrass:Discover for this thing.
	ErrUnauthorized = errors.New("discovery: unauthorized (401)")
	// ErrNotFound (404): the thing is in no Greengrass group (or no core of
	// its groups has connectivity information).
	ErrNotFound = errors.New("discovery: no discovery information (404)")
	// ErrThrottled (429): too many requests; retry later.
	ErrThrottled = errors.New("discovery: throttled (429)")
	// ErrTimeout: no complete answer within Config.Timeout or the caller's
	// deadline. It also matches context.DeadlineExceeded.
	ErrTimeout = errors.New("discovery: timed out")
	// ErrResponseTooLarge: the body exceeded Config.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("discovery: response too large")
	// ErrNoCore: a Router has no core address (or fallback) to route to.
	ErrNoCore = errors.New("discovery: no Greengrass core reachable")
)

// maxErrorBody bounds the body kept in a StatusError.
const maxErrorBody = 4096

// StatusError is a discovery answer with a status other than 200. It
// matches ErrBadRequest, ErrUnauthorized, ErrNotFound or ErrThrottled for
// 400, 401, 404 and 429.
type StatusError struct {
	Thing  string
	Status int
	// Body is the start of the response body (at most 4 KiB).
	Body string
	// RetryAfter is the server's Retry-After in seconds, 0 if none.
	RetryAfter time.Duration
}

// Error says what failed and what to do about it.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("discovery for thing %q: HTTP %d %s", e.Thing, e.Status, http.StatusText(e.Status))
	switch e.Status {
	case http.StatusBadRequest:
		msg += " (the request was refused as malformed: check the thing name)"
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += " (check the device certificate is active and its policy allows greengrass:Discover on this thing)"
	case http.StatusNotFound:
		msg += " (the thing is not a client device of any Greengrass group or core: associate it, or disable discovery)"
	case http.StatusTooManyRequests:
		msg += " (throttled: retry later)"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Is matches the sentinel of the status.
func (e *StatusError) Is(target error) bool {
	switch e.Status {
	case http.StatusBadRequest:
		return target == ErrBadRequest
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusTooManyRequests:
		return target == ErrThrottled
	}
	return false
}

// Permanent reports whether retrying the same request cannot help without
// someone changing something: 400 (malformed), 401 (certificate or
// policy) and 404 (the thing is in no group). Retry.Do stops at once on
// these by default; throttling, server errors, timeouts and network
// failures are retried.
func Permanent(err error) bool {
	return errors.Is(err, ErrBadRequest) || errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrNotFound)
}
