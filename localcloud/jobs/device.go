package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pinshadow/pinshadow/shadowdoc"
)

// AWS's error codes of the Jobs device API, and the management API's
// ResourceAlreadyExists.
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
	CodeResourceAlreadyExists  = "ResourceAlreadyExists"
)

// Error is a rejected request: AWS's code and a message, and the
// execution's state where AWS sends it.
type Error struct {
	Code    string
	Message string
	state   *execution
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func reject(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

const topicRoot = "$aws/things/"

func deviceTopic(thing, rest string) string { return topicRoot + thing + "/jobs/" + rest }

var jobIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func validJobID(id string) bool { return jobIDPattern.MatchString(id) }

// RequestFilters are the topics the service subscribes to: the device
// API's four request topics of every thing, and the management API.
func RequestFilters() []string {
	return []string{
		"$aws/things/+/jobs/get", "$aws/things/+/jobs/start-next",
		"$aws/things/+/jobs/+/get", "$aws/things/+/jobs/+/update",
		ManagementPrefix + "+",
	}
}

// Device API operations.
const (
	opGet       = "get"
	opStartNext = "start-next"
	opDescribe  = "describe"
	opUpdate    = "update"
)

// parseDeviceTopic splits a device request topic. ok is false for topics
// that are not Jobs requests at all (no reply); a Jobs topic with a bad
// job ID parses with op "" (InvalidTopic).
func parseDeviceTopic(topic string) (thing, op, jobID string, ok bool) {
	rest, found := strings.CutPrefix(topic, topicRoot)
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 || parts[1] != "jobs" || !shadowdoc.ValidThingName(parts[0]) {
		return "", "", "", false
	}
	thing = parts[0]
	switch {
	case len(parts) == 3 && parts[2] == opGet:
		return thing, opGet, "", true
	case len(parts) == 3 && parts[2] == opStartNext:
		return thing, opStartNext, "", true
	case len(parts) == 4 && (parts[3] == "get" || parts[3] == "update"):
		op = opDescribe
		if parts[3] == "update" {
			op = opUpdate
		}
		jobID = parts[2]
		if !validJobID(jobID) && !(op == opDescribe && jobID == "$next") {
			return thing, "", jobID, true
		}
		return thing, op, jobID, true
	}
	return "", "", "", false
}

// Handle handles one publish on a request topic at time now: a device
// request or a management request. ok is false when topic is neither (no
// reply, as AWS ignores publishes to topics nobody serves). Timers that
// ran out by now expire first.
func (e *Engine) Handle(topic string, payload []byte, now time.Time) (res Result, ok bool) {
	if op, found := strings.CutPrefix(topic, ManagementPrefix); found {
		return e.handleManagement(topic, op, payload, now), true
	}
	thing, op, jobID, ok := parseDeviceTopic(topic)
	if !ok {
		return Result{}, false
	}
	c := newChange()
	e.expire(c, now)
	token, body, err := e.device(c, thing, op, jobID, payload, now)
	if err != nil {
		rej := map[string]any{"code": err.Code, "message": err.Message, "timestamp": epoch(now)}
		if token != "" {
			rej["clientToken"] = token
		}
		if err.state != nil {
			rej["executionState"] = stateBody(err.state)
		}
		c.publish(topic+"/rejected", rej)
	} else {
		body["timestamp"] = epoch(now)
		if token != "" {
			body["clientToken"] = token
		}
		c.publish(topic+"/accepted", body)
	}
	return e.finish(c, now), true
}

// deviceRequest is every field of the four device requests. Numbers are
// raw: AWS takes JSON numbers, the v1 Python SDK sent strings.
type deviceRequest struct {
	ClientToken              json.RawMessage `json:"clientToken"`
	Status                   json.RawMessage `json:"status"`
	StatusDetails            json.RawMessage `json:"statusDetails"`
	ExpectedVersion          json.RawMessage `json:"expectedVersion"`
	ExecutionNumber          json.RawMessage `json:"executionNumber"`
	IncludeJobExecutionState json.RawMessage `json:"includeJobExecutionState"`
	IncludeJobDocument       json.RawMessage `json:"includeJobDocument"`
	StepTimeoutInMinutes     json.RawMessage `json:"stepTimeoutInMinutes"`
}

// parsed is a validated device request.
type parsed struct {
	token           string
	status          Status
	details         map[string]string
	hasDetails      bool
	expectedVersion int64
	executionNumber int64
	includeState    bool
	includeDoc      bool
	hasIncludeDoc   bool
	stepTimeout     int64
}

// parseRequest decodes and validates a device request payload; it is the
// engine's parser of untrusted input (fuzzed). An empty payload is an
// empty request.
func parseRequest(op string, payload []byte) (parsed, *Error) {
	var p parsed
	var r deviceRequest
	if len(bytes.TrimSpace(payload)) > 0 {
		if !json.Valid(payload) {
			return p, reject(CodeInvalidJSON, "payload is not valid JSON")
		}
		if err := json.Unmarshal(payload, &r); err != nil {
			return p, reject(CodeInvalidJSON, "payload is not a JSON object with the request's fields: %v", err)
		}
	}
	if len(r.ClientToken) > 0 && string(r.ClientToken) != "null" {
		if err := json.Unmarshal(r.ClientToken, &p.token); err != nil {
			return p, reject(CodeInvalidRequest, "clientToken must be a string")
		}
		if len(p.token) > maxClientToken {
			return p, reject(CodeInvalidRequest, "clientToken is %d bytes; at most %d allowed", len(p.token), maxClientToken)
		}
	}
	var err error
	num := func(name string, raw json.RawMessage) int64 {
		n, e := number(raw)
		if e != nil && err == nil {
			err = fmt.Errorf("%s: %w", name, e)
		}
		return n
	}
	boolean := func(name string, raw json.RawMessage) (bool, bool) {
		if len(raw) == 0 || string(raw) == "null" {
			return false, false
		}
		var b bool
		if e := json.Unmarshal(raw, &b); e != nil {
			var s string
			if json.Unmarshal(raw, &s) == nil && (s == "true" || s == "false") {
				return s == "true", true
			}
			if err == nil {
				err = fmt.Errorf("%s: want true or false", name)
			}
		}
		return b, true
	}
	p.expectedVersion = num("expectedVersion", r.ExpectedVersion)
	p.executionNumber = num("executionNumber", r.ExecutionNumber)
	p.stepTimeout = num("stepTimeoutInMinutes", r.StepTimeoutInMinutes)
	p.includeState, _ = boolean("includeJobExecutionState", r.IncludeJobExecutionState)
	p.includeDoc, p.hasIncludeDoc = boolean("includeJobDocument", r.IncludeJobDocument)
	if err != nil {
		return p, reject(CodeInvalidRequest, "%v", err)
	}
	if p.expectedVersion < 0 || p.executionNumber < 0 {
		return p, reject(CodeInvalidRequest, "expectedVersion and executionNumber must not be negative")
	}
	if len(r.StatusDetails) > 0 && string(r.StatusDetails) != "null" {
		if e := json.Unmarshal(r.StatusDetails, &p.details); e != nil {
			return p, reject(CodeInvalidRequest, "statusDetails must be an object of string values")
		}
		if e := validDetails(p.details); e != nil {
			return p, e
		}
		p.hasDetails = true
	}
	if op == opUpdate {
		if len(r.Status) == 0 || string(r.Status) == "null" {
			return p, reject(CodeInvalidRequest, "status is required")
		}
		var s string
		if json.Unmarshal(r.Status, &s) != nil || !Status(s).valid() {
			return p, reject(CodeInvalidRequest, "status %s: want IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", r.Status)
		}
		p.status = Status(s)
		if p.stepTimeout != 0 && p.stepTimeout != -1 && (p.stepTimeout < 1 || p.stepTimeout > maxStepTimeout) {
			return p, reject(CodeInvalidRequest, "stepTimeoutInMinutes %d: want 1–%d, or -1 to cancel the step timer", p.stepTimeout, maxStepTimeout)
		}
	} else if p.stepTimeout != 0 && (p.stepTimeout < 1 || p.stepTimeout > maxStepTimeout) {
		return p, reject(CodeInvalidRequest, "stepTimeoutInMinutes %d: want 1–%d", p.stepTimeout, maxStepTimeout)
	}
	return p, nil
}

var detailKey = regexp.MustCompile(`^[a-zA-Z0-9:_-]+$`)

func validDetails(d map[string]string) *Error {
	if len(d) > maxStatusDetails {
		return reject(CodeInvalidRequest, "statusDetails has %d entries; at most %d allowed", len(d), maxStatusDetails)
	}
	for k, v := range d {
		if len(k) > maxStatusDetailKey || !detailKey.MatchString(k) {
			return reject(CodeInvalidRequest, "statusDetails key %q: want 1–%d characters of a-z A-Z 0-9 : _ -", k, maxStatusDetailKey)
		}
		if len(v) == 0 || len(v) > maxStatusDetailValue || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return reject(CodeInvalidRequest, "statusDetails value of %q: want 1–%d characters, no control characters", k, maxStatusDetailValue)
		}
	}
	return nil
}

// number reads an integer sent as a JSON number or a string of digits.
func number(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, errors.New("not a number")
		}
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s is not an integer", raw)
	}
	return int64(f), nil
}

// device runs one device request; it returns the reply body or the
// rejection.
func (e *Engine) device(c *change, thing, op, jobID string, payload []byte, now time.Time) (string, map[string]any, *Error) {
	if op == "" {
		return "", nil, reject(CodeInvalidTopic, "job ID %q: want 1–64 characters of a-z A-Z 0-9 _ -", jobID)
	}
	p, err := parseRequest(op, payload)
	if err != nil {
		return p.token, nil, err
	}
	switch op {
	case opGet:
		ip, q := e.pending(thing)
		return p.token, map[string]any{"inProgressJobs": summaries(ip), "queuedJobs": summaries(q)}, nil
	case opDescribe:
		var x *execution
		if jobID == "$next" {
			if x = e.next(thing); x == nil {
				return p.token, map[string]any{}, nil // AWS: accepted, no execution
			}
		} else if x = e.things[thing][jobID]; x == nil {
			return p.token, nil, reject(CodeResourceNotFound, "job %s has no execution on thing %s", jobID, thing)
		}
		if p.executionNumber != 0 && p.executionNumber != x.ExecutionNumber {
			return p.token, nil, reject(CodeResourceNotFound, "job %s on thing %s has no execution number %d (latest is %d)", x.JobID, thing, p.executionNumber, x.ExecutionNumber)
		}
		withDoc := !p.hasIncludeDoc || p.includeDoc
		return p.token, map[string]any{"execution": e.executionBody(x, withDoc, now)}, nil
	case opStartNext:
		x := e.next(thing)
		if x == nil {
			return p.token, map[string]any{}, nil
		}
		if x.Status == Queued {
			// An IN_PROGRESS next is returned as it is, so a repeated
			// start-next (after a lost reply) changes nothing.
			if p.hasDetails {
				x.StatusDetails = p.details
			}
			e.setStatus(x, InProgress, now)
			if p.stepTimeout > 0 {
				x.StepDeadline = now.Add(time.Duration(p.stepTimeout) * time.Minute)
			}
			c.touch(x)
		}
		return p.token, map[string]any{"execution": e.executionBody(x, true, now)}, nil
	case opUpdate:
		return e.update(c, thing, jobID, p, now)
	}
	return p.token, nil, reject(CodeInvalidTopic, "unknown operation %q", op)
}

// update is UpdateJobExecution.
func (e *Engine) update(c *change, thing, jobID string, p parsed, now time.Time) (string, map[string]any, *Error) {
	x := e.things[thing][jobID]
	if x == nil {
		return p.token, nil, reject(CodeResourceNotFound, "job %s has no execution on thing %s", jobID, thing)
	}
	if p.executionNumber != 0 && p.executionNumber != x.ExecutionNumber {
		return p.token, nil, reject(CodeResourceNotFound, "job %s on thing %s has no execution number %d (latest is %d)", jobID, thing, p.executionNumber, x.ExecutionNumber)
	}
	if p.expectedVersion != 0 && p.expectedVersion != x.VersionNumber {
		err := reject(CodeVersionMismatch, "expected version %d, but the execution is at version %d", p.expectedVersion, x.VersionNumber)
		err.state = x
		return p.token, nil, err
	}
	if x.Status.Terminal() {
		err := reject(CodeTerminalStateReached, "job %s on thing %s is already %s and cannot be updated", jobID, thing, x.Status)
		err.state = x
		return p.token, nil, err
	}
	switch p.status {
	case InProgress, Succeeded, Failed, Rejected:
	default:
		err := reject(CodeInvalidStateTransition, "a device cannot set status %s (from %s); use IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", p.status, x.Status)
		err.state = x
		return p.token, nil, err
	}
	if p.hasDetails {
		x.StatusDetails = p.details
	}
	e.setStatus(x, p.status, now)
	if x.Status == InProgress {
		switch {
		case p.stepTimeout == -1:
			x.StepDeadline = time.Time{}
		case p.stepTimeout > 0:
			x.StepDeadline = now.Add(time.Duration(p.stepTimeout) * time.Minute)
		}
	}
	c.touch(x)
	body := map[string]any{}
	if p.includeState {
		body["executionState"] = stateBody(x)
	}
	if p.includeDoc {
		body["jobDocument"] = e.jobs[jobID].Document
	}
	return p.token, body, nil
}
