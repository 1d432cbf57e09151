package shadow

import (
	"errors"
	"time"
)

// Shadow is one stored shadow: its document, version, and — after a delete
// — the deletion record that decides the version of a re-created shadow.
type Shadow struct {
	// TODO(engine): fields.
}

// Exists reports whether the shadow currently exists (not deleted).
func (s *Shadow) Exists() bool { return s != nil }

// Version returns the current version (the deleted version for a deletion
// record, 0 for nil).
func (s *Shadow) Version() int64 { return 0 }

// MarshalBinary encodes the shadow for storage.
func (s *Shadow) MarshalBinary() ([]byte, error) { return nil, errors.New("todo") }

// UnmarshalBinary decodes a shadow stored by MarshalBinary.
func (s *Shadow) UnmarshalBinary(b []byte) error { return errors.New("todo") }

// Engine applies the shadow service's rules. It is safe for concurrent use:
// it holds only immutable options. Callers serialise requests per Key.
type Engine struct {
	opts Options
}

// New returns an Engine; zero Limits fields take AWS defaults.
func New(opts Options) *Engine {
	return &Engine{opts: opts}
}

// Handle processes one request for shadow k. cur is the stored shadow (nil
// when none); payload is the raw MQTT payload; now is the request time.
func (e *Engine) Handle(k Key, op Op, cur *Shadow, payload []byte, now time.Time) Result {
	return Result{}
}

// Reject builds the rejection AWS sends for a request refused before the
// engine looked at it (429 throttling, 500 storage failure), echoing the
// request's clientToken when its payload carries a valid one.
func (e *Engine) Reject(k Key, op Op, payload []byte, code int, message string) Result {
	return Result{}
}

// ParseTopic splits a request topic into shadow key and operation. ok is
// false for anything that is not a get/update/delete request topic of a
// valid thing and shadow name: such publishes get no response.
func ParseTopic(topic string) (k Key, op Op, ok bool) {
	return Key{}, "", false
}

// Prefix returns the shadow's topic prefix, e.g. "$aws/things/T/shadow" or
// "$aws/things/T/shadow/name/N".
func (k Key) Prefix() string { return "" }
