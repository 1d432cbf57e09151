// Package shadow is the AWS IoT Device Shadow service as pure logic: a
// request (topic, payload, the stored shadow, the time) goes in; the next
// stored shadow and the MQTT messages AWS would publish come out. It does no
// I/O, keeps no clocks and holds no locks: package localcloud adds the
// broker, persistence, ordering and rate limits around it.
//
// The rules followed are those of AWS IoT Core as documented and observed
// (see docs/ARCHITECTURE.md and the project's shadow reference): merge
// semantics, delta computation, metadata, versions and optimistic locking,
// error codes and exact messages, and limits.
package shadow

import (
	"time"
)

// Op is a shadow request operation.
type Op string

// Operations a device or application can request.
const (
	OpGet    Op = "get"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Key identifies one shadow: a thing's classic shadow (Name == "") or one
// of its named shadows.
type Key struct {
	Thing string
	Name  string
}

// Limits are the service quotas the engine enforces. Zero fields take AWS's
// defaults (see DefaultLimits).
type Limits struct {
	// MaxDocumentBytes bounds len(desired)+len(reported) of the merged
	// document, compact JSON (AWS: 8192). Exceeding it → 413.
	MaxDocumentBytes int
	// MaxDepth bounds nesting below desired/reported (AWS: 6) → 400.
	MaxDepth int
	// MaxClientTokenBytes bounds clientToken (AWS: 64) → 400.
	MaxClientTokenBytes int
}

// DefaultLimits returns AWS IoT Core's shadow limits.
func DefaultLimits() Limits {
	return Limits{MaxDocumentBytes: 8192, MaxDepth: 6, MaxClientTokenBytes: 64}
}

// RecreatePolicy chooses the first version of a shadow re-created after a
// delete at version N.
type RecreatePolicy int

const (
	// RecreateSkipOne gives N+2 (the deletion itself consumes a version), as
	// AWS-authored Greengrass code documents for the cloud. The default.
	RecreateSkipOne RecreatePolicy = iota
	// RecreateNext gives N+1.
	RecreateNext
	// RecreateReset restarts at 1.
	RecreateReset
)

// Options configure an Engine.
type Options struct {
	Limits   Limits
	Recreate RecreatePolicy
	// ForgetDeletedAfter: a shadow re-created longer than this after its
	// deletion starts again at version 1 (AWS: 48 h). 0 = never forget.
	ForgetDeletedAfter time.Duration
}

// Message is one MQTT publish the service makes in response to a request.
type Message struct {
	Topic   string
	Payload []byte
}

// Result is the outcome of one request.
type Result struct {
	// Next is the stored shadow after the request. It is nil when no
	// shadow (not even a deletion record) exists.
	Next *Shadow
	// Changed reports whether Next differs from the input and must be
	// persisted before Messages are published.
	Changed bool
	// Messages to publish, in order (accepted/rejected first, then delta,
	// then documents).
	Messages []Message
	// Code is 0 when the request was accepted, else the error code sent on
	// the rejected topic.
	Code int
}
