package reconcile

import (
	"fmt"
	"strings"
	"time"
)

// String renders a key as "path" for the classic shadow and
// "shadow/path" for a named one (shadow names cannot contain '/').
func (k KeyPath) String() string {
	if k.Shadow == "" {
		return k.Path
	}
	return k.Shadow + "/" + k.Path
}

// MarshalText encodes the key as "shadow/path" ("/path" for the classic
// shadow) so State can be persisted as JSON with keys as map keys.
func (k KeyPath) MarshalText() ([]byte, error) { return []byte(k.Shadow + "/" + k.Path), nil }

// UnmarshalText decodes what MarshalText produced.
func (k *KeyPath) UnmarshalText(b []byte) error {
	s, p, ok := strings.Cut(string(b), "/")
	if !ok {
		return fmt.Errorf("reconcile: key %q has no '/' between shadow and path; it was not written by KeyPath.MarshalText", b)
	}
	k.Shadow, k.Path = s, p
	return nil
}

// Output names one writable device property.
type Output struct {
	Device, Property string
}

// String renders the output as "device.property" for messages.
func (o Output) String() string { return o.Device + "." + o.Property }

// MarshalText encodes the output as "device/property".
func (o Output) MarshalText() ([]byte, error) { return []byte(o.Device + "/" + o.Property), nil }

// UnmarshalText decodes what MarshalText produced (property names contain
// no '/').
func (o *Output) UnmarshalText(b []byte) error {
	i := strings.LastIndexByte(string(b), '/')
	if i < 0 {
		return fmt.Errorf("reconcile: output %q has no '/' between device and property; it was not written by Output.MarshalText", b)
	}
	o.Device, o.Property = string(b[:i]), string(b[i+1:])
	return nil
}

// Status is the outcome of a desired key, as reported in
// reported._status.<key>.status.
type Status string

// Statuses, with the code each carries (HTTP-like, after the Azure twin
// acknowledgement convention).
const (
	// Applied (200): the hardware has the desired value (read back where
	// the hardware allows).
	Applied Status = "applied"
	// Pending (202): valid, but deferred (minimum toggle interval, or an
	// interlocked partner must switch off first); ApplyAt says when.
	Pending Status = "pending"
	// Failsafe (203): the agent has been offline longer than the key's
	// failsafe_after and holds the failsafe value instead of desired.
	Failsafe Status = "failsafe"
	// Rejected (400 invalid value, 404 unknown key, 409 interlock): not
	// applied; the hardware was not touched for this key.
	Rejected Status = "rejected"
	// Fault (500): the write failed in the hardware; retried at ApplyAt.
	Fault Status = "fault"
)

// Status codes.
const (
	CodeApplied  = 200
	CodePending  = 202
	CodeFailsafe = 203
	CodeInvalid  = 400
	CodeUnknown  = 404
	CodeConflict = 409
	CodeFault    = 500
)

// Result is one key's status: what the cloud learns about its desired
// value.
type Result struct {
	Status  Status
	Code    int
	Message string
	// Version is the desired document version this result answers: the
	// version at which the answered desired value was first seen (a
	// reported update bumping the document version does not change it).
	Version int64
	// At is when this result was decided; it stays the same while the
	// result does.
	At time.Time
	// ApplyAt: for Pending, when the change will be made; for Fault, when
	// the write is retried.
	ApplyAt time.Time `json:",omitzero"`
	// FailsafeAt: for Failsafe, when the failsafe value was applied; for
	// the Applied that follows a failsafe episode, when that episode began
	// (so the cloud learns of it even though the failsafe report and the
	// recovery are coalesced into one update on reconnect).
	FailsafeAt time.Time `json:",omitzero"`
}

// same reports whether r and o say the same thing (At aside).
func (r Result) same(o Result) bool {
	return r.Status == o.Status && r.Code == o.Code && r.Message == o.Message &&
		r.Version == o.Version && r.ApplyAt.Equal(o.ApplyAt) && r.FailsafeAt.Equal(o.FailsafeAt)
}

// Doc renders the result as its reported._status.<key> object:
//
//	{"status": "applied|pending|failsafe|rejected|fault", "code": 200,
//	 "message": "…", "version": 12, "at": 1764146000,
//	 "apply_at": …, "retry_at": …, "failsafe_at": …}
//
// Times are Unix seconds; message, apply_at (Pending), retry_at (Fault)
// and failsafe_at are present only when set.
func (r Result) Doc() map[string]any {
	d := map[string]any{
		"status":  string(r.Status),
		"code":    int64(r.Code),
		"version": r.Version,
		"at":      r.At.Unix(),
	}
	if r.Message != "" {
		d["message"] = r.Message
	}
	if !r.ApplyAt.IsZero() {
		if r.Status == Fault {
			d["retry_at"] = r.ApplyAt.Unix()
		} else {
			d["apply_at"] = r.ApplyAt.Unix()
		}
	}
	if !r.FailsafeAt.IsZero() {
		d["failsafe_at"] = r.FailsafeAt.Unix()
	}
	return d
}

// State is what the reconciler needs to remember across calls and
// restarts. The daemon persists it (JSON-encodable) after every Outcome
// and passes it back in the next Input. The zero State is a fresh device.
type State struct {
	Keys    map[KeyPath]KeyState   `json:"keys,omitempty"`
	Outputs map[Output]OutputState `json:"outputs,omitempty"`
}

// KeyState is the memory of one desired key (or of an unknown desired key,
// which has only Result and Answers).
type KeyState struct {
	// Applied is the shadow-side value last applied from desired (bool,
	// float64 or string; nil: none). Failsafe and boot values are not
	// recorded here: it is what "revert" writes back and what is restored
	// after a restart while the shadow is not yet known.
	Applied any `json:"applied,omitempty"`
	// AppliedVersion is the desired version Applied answered.
	AppliedVersion int64 `json:"applied_version,omitempty"`
	// ReadBack is the device-side value the output read back as right
	// after Applied was written: the hardware may quantize (a PWM duty),
	// and a desired value it already holds in its own resolution is not
	// written again.
	ReadBack any `json:"read_back,omitempty"`
	// Result is the last result decided, and Answers the desired JSON
	// value it answers.
	Result  *Result `json:"result,omitempty"`
	Answers any     `json:"answers,omitempty"`
	// Faults counts consecutive failed writes of Tried (device side).
	Faults int `json:"faults,omitempty"`
	Tried  any `json:"tried,omitempty"`
	// FailsafeAt is when the failsafe value was applied (zero: not in
	// failsafe).
	FailsafeAt time.Time `json:"failsafe_at,omitzero"`
}

// OutputState is the memory of one output.
type OutputState struct {
	// LastChange is when the output was last set to a different value
	// (what min_toggle_interval counts from).
	LastChange time.Time `json:"last_change,omitzero"`
}

// clone copies a State so an Outcome never aliases its input.
func (s State) clone() State {
	out := State{Keys: make(map[KeyPath]KeyState, len(s.Keys)), Outputs: make(map[Output]OutputState, len(s.Outputs))}
	for k, v := range s.Keys {
		out.Keys[k] = v
	}
	for k, v := range s.Outputs {
		out.Outputs[k] = v
	}
	return out
}
