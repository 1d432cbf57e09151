package shadow

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Error messages exactly as the AWS IoT shadow service sends them.
const (
	msgInvalidJSON     = "Payload contains invalid json"
	msgMissingState    = "Missing required node: state"
	msgStateNotObject  = "State node must be an object"
	msgDesiredNotObj   = "Desired node must be an object"
	msgReportedNotObj  = "Reported node must be an object"
	msgInvalidVersion  = "Invalid version"
	msgInvalidToken    = "Invalid clientToken"
	msgTooDeep         = "JSON contains too many levels of nesting; maximum is %d"
	msgInvalidNode     = "State contains an invalid node: '%s'"
	msgNoShadow        = "No shadow exists with name: '%s'"
	msgVersionConflict = "Version conflict"
	msgTooLarge        = "The payload exceeds the maximum size allowed"
	msgEncoding        = "Unsupported documented encoding; supported encoding is UTF-8"
	msgNullInArray     = "Invalid JSON: arrays must not contain null values"
)

// Shadow is one stored shadow: its document and version, or — after a
// delete — the deletion record that decides the version of a re-created
// shadow. A Shadow is immutable once returned by the Engine.
type Shadow struct {
	desired, reported         map[string]any // nil when absent
	desiredMeta, reportedMeta map[string]any
	version                   int64
	deleted                   bool
	deletedAt                 int64 // unix seconds
}

// Exists reports whether the shadow currently exists (not deleted).
func (s *Shadow) Exists() bool { return s != nil && !s.deleted }

// Version returns the current version: the version at deletion for a
// deleted shadow, 0 for nil.
func (s *Shadow) Version() int64 {
	if s == nil {
		return 0
	}
	return s.version
}

// stored is the persistence form of a Shadow.
type stored struct {
	Desired      map[string]any `json:"desired,omitempty"`
	Reported     map[string]any `json:"reported,omitempty"`
	DesiredMeta  map[string]any `json:"desiredMeta,omitempty"`
	ReportedMeta map[string]any `json:"reportedMeta,omitempty"`
	Version      int64          `json:"version"`
	Deleted      bool           `json:"deleted,omitempty"`
	DeletedAt    int64          `json:"deletedAt,omitempty"`
}

// MarshalBinary encodes the shadow for storage.
func (s *Shadow) MarshalBinary() ([]byte, error) {
	if s == nil {
		return nil, errors.New("shadow: marshal of nil shadow")
	}
	return marshal(stored{
		Desired: s.desired, Reported: s.reported,
		DesiredMeta: s.desiredMeta, ReportedMeta: s.reportedMeta,
		Version: s.version, Deleted: s.deleted, DeletedAt: s.deletedAt,
	}), nil
}

// UnmarshalBinary decodes a shadow stored by MarshalBinary.
func (s *Shadow) UnmarshalBinary(b []byte) error {
	v, err := decodeJSON(b)
	if err != nil {
		return fmt.Errorf("shadow: decode stored shadow: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return errors.New("shadow: decode stored shadow: not a JSON object")
	}
	*s = Shadow{}
	s.desired, _ = m["desired"].(map[string]any)
	s.reported, _ = m["reported"].(map[string]any)
	if dm, ok := m["desiredMeta"].(map[string]any); ok {
		s.desiredMeta = loadMeta(dm).(map[string]any)
	}
	if rm, ok := m["reportedMeta"].(map[string]any); ok {
		s.reportedMeta = loadMeta(rm).(map[string]any)
	}
	if s.desired != nil && s.desiredMeta == nil {
		s.desiredMeta = map[string]any{}
	}
	if s.reported != nil && s.reportedMeta == nil {
		s.reportedMeta = map[string]any{}
	}
	s.version = numInt(m["version"])
	s.deleted, _ = m["deleted"].(bool)
	s.deletedAt = numInt(m["deletedAt"])
	return nil
}

// Engine applies the shadow service's rules. It is safe for concurrent use:
// it holds only immutable options. Callers serialise requests per Key.
type Engine struct {
	opts Options
}

// New returns an Engine; zero Limits fields take AWS defaults.
func New(opts Options) *Engine {
	d := DefaultLimits()
	if opts.Limits.MaxDocumentBytes <= 0 {
		opts.Limits.MaxDocumentBytes = d.MaxDocumentBytes
	}
	if opts.Limits.MaxDepth <= 0 {
		opts.Limits.MaxDepth = d.MaxDepth
	}
	if opts.Limits.MaxClientTokenBytes <= 0 {
		opts.Limits.MaxClientTokenBytes = d.MaxClientTokenBytes
	}
	return &Engine{opts: opts}
}

// Options returns the engine's options with defaults filled in.
func (e *Engine) Options() Options { return e.opts }

// Handle processes one request for shadow k. cur is the stored shadow (nil
// when none); payload is the raw MQTT payload; now is the request time.
func (e *Engine) Handle(k Key, op Op, cur *Shadow, payload []byte, now time.Time) Result {
	switch op {
	case OpUpdate:
		return e.update(k, cur, payload, now.Unix())
	case OpGet:
		return e.get(k, cur, payload, now.Unix())
	case OpDelete:
		return e.delete(k, cur, payload, now.Unix())
	}
	return Result{Next: cur}
}

// Reject builds the rejection AWS sends for a request refused before the
// engine looked at it (429 throttling, 500 storage failure), echoing the
// request's clientToken when its payload carries a valid one.
func (e *Engine) Reject(k Key, op Op, payload []byte, code int, message string) Result {
	tok, _ := e.lenientToken(payload)
	return Result{Code: code, Messages: []Message{rejected(k, op, code, message, tok)}}
}

// lenientToken extracts clientToken from a get/delete payload, whose
// content AWS otherwise ignores. ok is false when a token is present but
// invalid (too long).
func (e *Engine) lenientToken(payload []byte) (tok *string, ok bool) {
	if len(strings.TrimSpace(string(payload))) == 0 || !utf8.Valid(payload) {
		return nil, true
	}
	v, err := decodeJSON(payload)
	if err != nil {
		return nil, true
	}
	m, _ := v.(map[string]any)
	s, isStr := m["clientToken"].(string)
	if !isStr {
		return nil, true
	}
	if len(s) > e.opts.Limits.MaxClientTokenBytes {
		return nil, false
	}
	return &s, true
}

func (e *Engine) get(k Key, cur *Shadow, payload []byte, now int64) Result {
	tok, ok := e.lenientToken(payload)
	if !ok {
		return reject(k, OpGet, cur, 400, msgInvalidToken, nil)
	}
	if !cur.Exists() {
		return reject(k, OpGet, cur, 404, fmt.Sprintf(msgNoShadow, k.displayName()), tok)
	}
	state := map[string]any{}
	meta := map[string]any{}
	if cur.desired != nil {
		state["desired"] = cur.desired
		meta["desired"] = renderMeta(cur.desiredMeta)
	}
	if cur.reported != nil {
		state["reported"] = cur.reported
		meta["reported"] = renderMeta(cur.reportedMeta)
	}
	if d := delta(cur.desired, cur.reported); len(d) > 0 {
		state["delta"] = d
	}
	return Result{Next: cur, Messages: []Message{{
		Topic:   k.Prefix() + "/get/accepted",
		Payload: marshal(response{State: state, Metadata: meta, Version: ptr(cur.version), Timestamp: now, ClientToken: tok}),
	}}}
}

func (e *Engine) delete(k Key, cur *Shadow, payload []byte, now int64) Result {
	tok, ok := e.lenientToken(payload)
	if !ok {
		return reject(k, OpDelete, cur, 400, msgInvalidToken, nil)
	}
	if !cur.Exists() {
		return reject(k, OpDelete, cur, 404, fmt.Sprintf(msgNoShadow, k.displayName()), tok)
	}
	next := &Shadow{version: cur.version, deleted: true, deletedAt: now}
	return Result{Next: next, Changed: true, Messages: []Message{{
		Topic:   k.Prefix() + "/delete/accepted",
		Payload: marshal(response{Version: ptr(cur.version), Timestamp: now, ClientToken: tok}),
	}}}
}

// baseVersion is the version an update's "version" field must match: the
// current version of an existing shadow, or the one before the version a
// new shadow will get.
func (e *Engine) baseVersion(cur *Shadow, now int64) int64 {
	switch {
	case cur == nil:
		return 0
	case !cur.deleted:
		return cur.version
	}
	if w := e.opts.ForgetDeletedAfter; w > 0 && now-cur.deletedAt > int64(w/time.Second) {
		return 0
	}
	switch e.opts.Recreate {
	case RecreateNext:
		return cur.version
	case RecreateReset:
		return 0
	default:
		return cur.version + 1
	}
}

func (e *Engine) update(k Key, cur *Shadow, payload []byte, now int64) Result {
	lim := e.opts.Limits
	fail := func(code int, msg string, tok *string) Result {
		return reject(k, OpUpdate, cur, code, msg, tok)
	}
	if !utf8.Valid(payload) {
		return fail(415, msgEncoding, nil)
	}
	v, err := decodeJSON(payload)
	req, isObj := v.(map[string]any)
	if err != nil || !isObj {
		return fail(400, msgInvalidJSON, nil)
	}
	// The token is echoed on rejections once the payload parsed, but only
	// if it is itself valid.
	var tok *string
	rawTok, hasTok := req["clientToken"]
	tokStr, tokIsStr := rawTok.(string)
	tokValid := !hasTok || (tokIsStr && len(tokStr) <= lim.MaxClientTokenBytes)
	if hasTok && tokValid {
		tok = &tokStr
	}

	rawState, hasState := req["state"]
	if !hasState {
		return fail(400, msgMissingState, tok)
	}
	var state map[string]any // nil for "state": null
	if rawState != nil {
		s, ok := rawState.(map[string]any)
		if !ok {
			return fail(400, msgStateNotObject, tok)
		}
		state = s
	}
	for _, key := range sortedKeys(state) {
		if key != "desired" && key != "reported" {
			return fail(400, fmt.Sprintf(msgInvalidNode, key), tok)
		}
	}
	sections := [2]struct {
		name    string
		present bool
		val     map[string]any // nil with present = "section": null
	}{{name: "desired"}, {name: "reported"}}
	for i := range sections {
		raw, ok := state[sections[i].name]
		if !ok {
			continue
		}
		sections[i].present = true
		if raw == nil {
			continue
		}
		m, isMap := raw.(map[string]any)
		if !isMap {
			if i == 0 {
				return fail(400, msgDesiredNotObj, tok)
			}
			return fail(400, msgReportedNotObj, tok)
		}
		sections[i].val = m
	}
	if !tokValid {
		return fail(400, msgInvalidToken, nil)
	}
	var wantVersion *int64
	if rv, ok := req["version"]; ok && rv != nil {
		n, isNum := rv.(json.Number)
		iv, err := n.Int64()
		if !isNum || err != nil {
			return fail(400, msgInvalidVersion, tok)
		}
		wantVersion = &iv
	}
	for _, s := range sections {
		if depth(s.val) > lim.MaxDepth {
			return fail(400, fmt.Sprintf(msgTooDeep, lim.MaxDepth), tok)
		}
	}
	for _, s := range sections {
		if nullInArray(s.val, false) {
			return fail(400, msgNullInArray, tok)
		}
	}
	base := e.baseVersion(cur, now)
	if wantVersion != nil && *wantVersion != base {
		return fail(409, msgVersionConflict, tok)
	}

	// Merge onto the current document (a deleted shadow starts empty).
	next := &Shadow{version: base + 1}
	if cur.Exists() {
		next.desired, next.desiredMeta = cur.desired, cur.desiredMeta
		next.reported, next.reportedMeta = cur.reported, cur.reportedMeta
	}
	if rawState == nil { // {"state": null} clears everything
		next.desired, next.desiredMeta, next.reported, next.reportedMeta = nil, nil, nil, nil
	}
	apply := func(doc, meta *map[string]any, s struct {
		name    string
		present bool
		val     map[string]any
	}) {
		if !s.present {
			return
		}
		if s.val == nil {
			*doc, *meta = nil, nil
			return
		}
		d, m := merge(*doc, *meta, s.val, now)
		if len(d) == 0 {
			d, m = nil, nil
		}
		*doc, *meta = d, m
	}
	apply(&next.desired, &next.desiredMeta, sections[0])
	apply(&next.reported, &next.reportedMeta, sections[1])
	if sizeOf(next.desired, next.reported) > lim.MaxDocumentBytes {
		return fail(413, msgTooLarge, tok)
	}

	// update/accepted echoes the request's state as sent, nulls included.
	var acceptedMeta any
	if rawState == nil {
		acceptedMeta = map[string]any{"timestamp": now}
	} else {
		acceptedMeta = requestMeta(state, now)
	}
	msgs := []Message{{
		Topic: k.Prefix() + "/update/accepted",
		Payload: marshal(response{State: rawStateOrNull(rawState), Metadata: acceptedMeta,
			Version: ptr(next.version), Timestamp: now, ClientToken: tok}),
	}}
	if d := delta(next.desired, next.reported); len(d) > 0 {
		msgs = append(msgs, Message{
			Topic: k.Prefix() + "/update/delta",
			Payload: marshal(response{State: d, Metadata: deltaMeta(d, next.desiredMeta),
				Version: ptr(next.version), Timestamp: now, ClientToken: tok}),
		})
	}
	var prev any // null when the shadow did not exist before
	if cur.Exists() {
		prev = cur.document()
	}
	msgs = append(msgs, Message{
		Topic:   k.Prefix() + "/update/documents",
		Payload: marshal(documents{Previous: prev, Current: next.document(), Timestamp: now, ClientToken: tok}),
	})
	return Result{Next: next, Changed: true, Messages: msgs}
}

// rawStateOrNull keeps {"state": null} as an explicit null in the output.
func rawStateOrNull(v any) any {
	if v == nil {
		return json.RawMessage("null")
	}
	return v
}

// document is the stored document as update/documents shows it.
func (s *Shadow) document() docSnapshot {
	d := docSnapshot{State: map[string]any{}, Metadata: map[string]any{}, Version: s.version}
	if s.desired != nil {
		d.State["desired"] = s.desired
		d.Metadata["desired"] = renderMeta(s.desiredMeta)
	}
	if s.reported != nil {
		d.State["reported"] = s.reported
		d.Metadata["reported"] = renderMeta(s.reportedMeta)
	}
	return d
}

// Wire documents; field order follows AWS's own output.
type response struct {
	State       any     `json:"state,omitempty"`
	Metadata    any     `json:"metadata,omitempty"`
	Version     *int64  `json:"version,omitempty"`
	Timestamp   int64   `json:"timestamp"`
	ClientToken *string `json:"clientToken,omitempty"`
}

type docSnapshot struct {
	State    map[string]any `json:"state"`
	Metadata map[string]any `json:"metadata"`
	Version  int64          `json:"version"`
}

type documents struct {
	Previous    any         `json:"previous"`
	Current     docSnapshot `json:"current"`
	Timestamp   int64       `json:"timestamp"`
	ClientToken *string     `json:"clientToken,omitempty"`
}

type errorDoc struct {
	Code        int     `json:"code"`
	Message     string  `json:"message"`
	ClientToken *string `json:"clientToken,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func rejected(k Key, op Op, code int, msg string, tok *string) Message {
	return Message{
		Topic:   k.Prefix() + "/" + string(op) + "/rejected",
		Payload: marshal(errorDoc{Code: code, Message: msg, ClientToken: tok}),
	}
}

func reject(k Key, op Op, cur *Shadow, code int, msg string, tok *string) Result {
	return Result{Next: cur, Code: code, Messages: []Message{rejected(k, op, code, msg, tok)}}
}
