package shadowsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ShadowOptions configure one opened shadow.
type ShadowOptions struct {
	// OnDemand subscribes to an operation's response topics only for the
	// duration of each request (the v1 SDK's isPersistentSubscribe=false);
	// only update/delta stays subscribed. The default subscribes all seven
	// response topics once, in one batch, for the connection's life.
	OnDemand bool
	// NoAutoSync turns off the get (and full reported re-publish) at Open
	// and after every Reconnected: for tools that only make explicit
	// requests.
	NoAutoSync bool
	// VersionedReports sends reported updates with the mirror's version, so
	// the service refuses them (409) when the document changed unseen; the
	// shadow then gets the document, delivers any delta and retries.
	VersionedReports bool
	// OnReportError is called, from the shadow's own goroutine, when a
	// reported update is rejected for good (e.g. 400, 413) and dropped. It
	// must not call Close.
	OnReportError func(error)
}

// Shadow is one open shadow: requests, deltas, the mirror and reporting.
// Its methods are safe for concurrent use.
type Shadow struct {
	c       *Client
	key     Key
	opts    ShadowOptions
	filters []string // subscribed for the shadow's life
	deltas  chan Delta
	wake    chan struct{}
	ctx     context.Context // ends when the shadow or its client is closed
	cancel  context.CancelFunc
	done    chan struct{} // closed when run has returned

	mu     sync.Mutex
	closed bool
	m      mirror
	// desiredAt is when the last message that can change desired arrived
	// (a delta, a get's document, an update reply with desired), by the
	// client's clock.
	desiredAt  time.Time
	local      map[string]any   // the full reported state the device claims
	pending    []map[string]any // reported patches not yet accepted, in order
	inflight   bool
	syncWanted bool
	failures   int
	retryAt    time.Time
	changed    chan struct{} // closed and replaced when reporting progresses
	resyncs    int           // completed resyncs, for tests
	lastErr    error         // the last failure of a background request
}

// Delta is a delta notification: desired values that differ from
// reported.
type Delta struct {
	// Shadow identifies the shadow.
	Shadow Key
	// Version is the shadow version the delta belongs to.
	Version int64
	// State is the whole current delta (not just the last change), with
	// numbers as json.Number.
	State map[string]any
	// Timestamp is the service's timestamp (epoch seconds), 0 for resyncs.
	Timestamp int64
	// ClientToken is the token of the update that caused the delta, if any.
	ClientToken string
	// Resync is true for a delta taken from a get: after a reconnect (desired
	// changes made while offline), after a 409, or when the mirror missed
	// versions. It stays true when a newer delta replaces an unread resync.
	Resync bool
}

// Document is a get/accepted response: the whole shadow document.
type Document struct {
	// Desired, Reported and Delta are the document's state sections, nil
	// when absent; numbers are json.Number.
	Desired, Reported, Delta map[string]any
	// Metadata holds per-leaf timestamps, as sent.
	Metadata map[string]any
	// Version is the document's version; Timestamp the time of the get.
	Version, Timestamp int64
	// ClientToken is the request's token.
	ClientToken string
	// Raw is the response exactly as received.
	Raw json.RawMessage
}

// Accepted is an update/accepted response.
type Accepted struct {
	// State is the request's state as sent (nulls kept); nil for
	// {"state": null}.
	State map[string]any
	// Version is the shadow's new version.
	Version, Timestamp int64
	// ClientToken is the request's token.
	ClientToken string
	// Raw is the response exactly as received.
	Raw json.RawMessage
}

// Deleted is a delete/accepted response.
type Deleted struct {
	// Version is the version the shadow had when it was deleted.
	Version, Timestamp int64
	// ClientToken is the request's token.
	ClientToken string
	// Raw is the response exactly as received.
	Raw json.RawMessage
}

// UpdateRequest is a shadow update.
type UpdateRequest struct {
	// Desired and Reported are merged into the document (null deletes a
	// key); nil leaves a section alone. Values must marshal to JSON.
	Desired, Reported map[string]any
	// ClearDesired and ClearReported send "desired": null or
	// "reported": null, removing the whole section.
	ClearDesired, ClearReported bool
	// Version, when > 0, makes the update apply only if it equals the
	// shadow's current version (else ErrConflict).
	Version int64
}

// Open starts using shadow k: it subscribes its response topics and, unless
// so.NoAutoSync, gets the document in the background (delivering a delta
// if desired differs from reported).
func (c *Client) Open(ctx context.Context, k Key, so ShadowOptions) (*Shadow, error) {
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("shadowsync: open: %w", err)
	}
	s := &Shadow{
		c: c, key: k, opts: so,
		deltas: make(chan Delta, 1), wake: make(chan struct{}, 1), done: make(chan struct{}),
		changed: make(chan struct{}), syncWanted: !so.NoAutoSync,
	}
	s.ctx, s.cancel = context.WithCancel(c.ctx)
	if so.OnDemand {
		s.filters = []string{k.Prefix() + "/update/delta"}
	} else {
		s.filters = responseFilters(k)
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return nil, ErrClosed
	case c.shadows[k] != nil:
		c.mu.Unlock()
		return nil, fmt.Errorf("shadowsync: shadow %s is already open on this client", k)
	}
	c.shadows[k] = s
	c.mu.Unlock()

	if err := c.conn.Subscribe(ctx, s.filters, c.qos, c.onMessage); err != nil {
		c.mu.Lock()
		delete(c.shadows, k)
		c.mu.Unlock()
		s.cancel()
		return nil, fmt.Errorf("shadowsync: open %s: subscribe %v: %w", k, s.filters, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.cancel()
		return nil, ErrClosed
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go s.run(s.ctx)
	return s, nil
}

// Close stops using the shadow: its goroutine stops, waiting requests and
// Flush fail with ErrClosed, Deltas is closed and its topics are
// unsubscribed (bounded by ctx). Other shadows are not affected; the key
// may be opened again. Client.Close closes every shadow.
func (s *Shadow) Close(ctx context.Context) error {
	c := s.c
	c.mu.Lock()
	mine := c.shadows[s.key] == s
	if mine {
		delete(c.shadows, s.key)
	}
	c.mu.Unlock()
	s.cancel()
	<-s.done
	if !mine {
		return nil // closed before, or by Client.Close
	}
	if err := c.conn.Unsubscribe(ctx, s.filters...); err != nil {
		return fmt.Errorf("shadowsync: close %s: unsubscribe: %w", s.key, err)
	}
	return nil
}

// Key returns the shadow's key.
func (s *Shadow) Key() Key { return s.key }

// Deltas returns the channel of delta notifications. It holds the newest
// undelivered delta (a newer one replaces it: each carries the whole
// current delta) and is closed when the client is closed.
func (s *Shadow) Deltas() <-chan Delta { return s.deltas }

// Mirror returns a copy of the last known document.
func (s *Shadow) Mirror() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.m.snapshot()
	if !s.desiredAt.IsZero() {
		snap.DesiredAge = max(s.c.opts.Clock.Now().Sub(s.desiredAt), 0)
	}
	return snap
}

// Get requests the shadow document.
func (s *Shadow) Get(ctx context.Context) (*Document, error) {
	r, err := s.c.request(ctx, s, opGet, map[string]any{}, false)
	if err != nil {
		return nil, err
	}
	d := &Document{
		Version: int64Of(r.doc, "version"), Timestamp: int64Of(r.doc, "timestamp"), Raw: r.raw,
	}
	d.ClientToken, _ = r.doc["clientToken"].(string)
	d.Metadata, _ = r.doc["metadata"].(map[string]any)
	if st, ok := r.doc["state"].(map[string]any); ok {
		d.Desired, _ = st["desired"].(map[string]any)
		d.Reported, _ = st["reported"].(map[string]any)
		d.Delta, _ = st["delta"].(map[string]any)
	}
	return d, nil
}

// Update requests an update.
func (s *Shadow) Update(ctx context.Context, u UpdateRequest) (*Accepted, error) {
	state := map[string]any{}
	for _, sec := range []struct {
		name  string
		val   map[string]any
		clear bool
	}{{"desired", u.Desired, u.ClearDesired}, {"reported", u.Reported, u.ClearReported}} {
		switch {
		case sec.clear:
			state[sec.name] = nil
		case sec.val != nil:
			state[sec.name] = sec.val
		}
	}
	body := map[string]any{"state": state}
	if u.Version > 0 {
		body["version"] = u.Version
	}
	return s.update(ctx, body, false)
}

// UpdateJSON requests an update with a whole request document, e.g.
// {"state":{"desired":{"led":"on"}},"version":3}. Its clientToken, if any,
// is replaced by a fresh one.
func (s *Shadow) UpdateJSON(ctx context.Context, doc []byte) (*Accepted, error) {
	v, err := decodeJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("shadow %s update: request document is not valid JSON: %w", s.key, err)
	}
	body, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("shadow %s update: request document is %T, want a JSON object like {\"state\":{\"desired\":{…}}}", s.key, v)
	}
	return s.update(ctx, body, false)
}

func (s *Shadow) update(ctx context.Context, body map[string]any, preTaken bool) (*Accepted, error) {
	r, err := s.c.request(ctx, s, opUpdate, body, preTaken)
	if err != nil {
		return nil, err
	}
	a := &Accepted{Version: int64Of(r.doc, "version"), Timestamp: int64Of(r.doc, "timestamp"), Raw: r.raw}
	a.ClientToken, _ = r.doc["clientToken"].(string)
	a.State, _ = r.doc["state"].(map[string]any)
	return a, nil
}

// Delete requests deletion of the shadow.
func (s *Shadow) Delete(ctx context.Context) (*Deleted, error) {
	r, err := s.c.request(ctx, s, opDelete, map[string]any{}, false)
	if err != nil {
		return nil, err
	}
	d := &Deleted{Version: int64Of(r.doc, "version"), Timestamp: int64Of(r.doc, "timestamp"), Raw: r.raw}
	d.ClientToken, _ = r.doc["clientToken"].(string)
	return d, nil
}

// Report queues a change of the device's reported state: a patch merged
// like AWS merges it (objects recurse, null deletes a key). Patches not yet
// sent are coalesced to the latest value per key; the shadow's goroutine
// sends them within the thing's rate limit, retries temporary failures and
// re-publishes the full reported state after every reconnect. It returns
// an error only for a patch that does not marshal to a JSON object.
func (s *Shadow) Report(patch map[string]any) error {
	p, err := normalizeObject(patch)
	if err != nil {
		return fmt.Errorf("shadow %s report: %w", s.key, err)
	}
	if len(p) == 0 {
		return nil
	}
	s.mu.Lock()
	s.local = applyPatch(s.local, p)
	s.enqueue(p)
	s.mu.Unlock()
	s.kick()
	return nil
}

// ReportStatus is the state of a shadow's background reporting, for status
// displays.
type ReportStatus struct {
	// Pending is the number of queued reported patches not yet sent (after
	// coalescing); InFlight is true while one is being sent.
	Pending  int
	InFlight bool
	// Failures counts consecutive failed background requests; RetryAt is
	// when the next retry goes (zero when none is scheduled).
	Failures int
	RetryAt  time.Time
	// LastError is the last background failure (nil after a success).
	LastError error
}

// Status returns the state of background reporting.
func (s *Shadow) Status() ReportStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ReportStatus{Pending: len(s.pending), InFlight: s.inflight, Failures: s.failures, RetryAt: s.retryAt, LastError: s.lastErr}
}

// Flush waits until every reported change queued so far has been accepted
// (or dropped as rejected), or ctx ends.
func (s *Shadow) Flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		idle := len(s.pending) == 0 && !s.inflight
		ch := s.changed
		closed := s.closed
		s.mu.Unlock()
		switch {
		case idle:
			return nil
		case closed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("shadow %s flush: reported changes still pending: %w", s.key, ctx.Err())
		}
	}
}

// enqueue appends patch p to the pending reports, coalescing it into the
// last one when a single patch can express both. Call with s.mu held.
func (s *Shadow) enqueue(p map[string]any) {
	if n := len(s.pending); n > 0 {
		if merged, ok := composePatches(s.pending[n-1], p); ok {
			s.pending[n-1] = merged
			return
		}
	}
	s.pending = append(s.pending, cloneMap(p))
}

// putBack returns a failed in-flight patch to the head of the queue.
// Call with s.mu held.
func (s *Shadow) putBack(p map[string]any) {
	s.inflight = false
	if len(s.pending) > 0 {
		if merged, ok := composePatches(p, s.pending[0]); ok {
			s.pending[0] = merged
			return
		}
	}
	s.pending = append([]map[string]any{p}, s.pending...)
}

// progressed wakes Flush waiters. Call with s.mu held.
func (s *Shadow) progressed() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// kick wakes the shadow's goroutine.
func (s *Shadow) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// offer delivers a delta latest-wins without blocking. Call with s.mu held.
func (s *Shadow) offer(d Delta) {
	if s.closed {
		return
	}
	select {
	case s.deltas <- d:
		return
	default:
	}
	select {
	case old := <-s.deltas:
		// Replaced: d carries the whole current delta. A resync stays a
		// resync, so the owner still learns that changes were made while
		// it was away (they may be in d's state too).
		d.Resync = d.Resync || old.Resync
	default:
	}
	s.deltas <- d // only producers (holding s.mu) send, so there is room
}

// observe feeds one response message into the mirror. It never blocks.
func (s *Shadow) observe(op, kind string, doc map[string]any) {
	v := int64Of(doc, "version")
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == kindDelta || (kind == kindAccepted && (op == opGet || (op == opUpdate && carriesDesired(doc)))) {
		s.desiredAt = s.c.opts.Clock.Now()
	}
	switch {
	case kind == kindDelta:
		d, _ := doc["state"].(map[string]any)
		if s.m.onDelta(v, d) {
			tok, _ := doc["clientToken"].(string)
			s.offer(Delta{Shadow: s.key, Version: v, State: cloneMap(d), Timestamp: int64Of(doc, "timestamp"), ClientToken: tok})
		}
	case op == opGet && kind == kindAccepted:
		st, _ := doc["state"].(map[string]any)
		desired, _ := st["desired"].(map[string]any)
		reported, _ := st["reported"].(map[string]any)
		delta, _ := st["delta"].(map[string]any)
		s.m.onDocument(v, desired, reported, delta)
	case op == opUpdate && kind == kindAccepted:
		var u update
		raw, has := doc["state"]
		switch st := raw.(type) {
		case nil:
			u.stateNull = has
		case map[string]any:
			var d, r any
			d, u.hasDesired = st["desired"]
			r, u.hasReported = st["reported"]
			u.desired, _ = d.(map[string]any)
			u.reported, _ = r.(map[string]any)
		}
		s.m.onAccepted(v, u)
		if s.m.needGet && !s.opts.NoAutoSync {
			s.kickLocked()
		}
	case op == opDelete && kind == kindAccepted:
		s.m.onGone()
	case op == opGet && kind == kindRejected && int64Of(doc, "code") == 404:
		s.m.onGone()
	}
}

// carriesDesired reports whether an update reply sets or clears desired.
func carriesDesired(doc map[string]any) bool {
	raw, has := doc["state"]
	if !has {
		return false
	}
	st, ok := raw.(map[string]any)
	if !ok {
		return true // state: null clears everything
	}
	_, ok = st["desired"]
	return ok
}

func (s *Shadow) kickLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// refresh gets the document and delivers its delta if it is news. It
// reports whether the get was answered (a 404 counts).
func (s *Shadow) refresh(ctx context.Context) (bool, error) {
	doc, err := s.Get(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		return true, nil
	case err != nil:
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m.gateDelta(doc.Version, doc.Delta) {
		s.offer(Delta{Shadow: s.key, Version: doc.Version, State: cloneMap(doc.Delta), Resync: true})
	}
	return true, nil
}

// run is the shadow's goroutine: resyncs, mirror refreshes and reports.
func (s *Shadow) run(ctx context.Context) {
	defer s.c.wg.Done()
	defer close(s.done)
	defer func() {
		s.mu.Lock()
		s.closed = true
		close(s.deltas)
		s.progressed()
		s.mu.Unlock()
	}()
	for ctx.Err() == nil {
		s.mu.Lock()
		clk := s.c.opts.Clock
		var wait time.Duration
		if !s.retryAt.IsZero() {
			wait = s.retryAt.Sub(clk.Now())
			if wait <= 0 {
				s.retryAt, wait = time.Time{}, 0
			}
		}
		syncNow := wait == 0 && s.syncWanted
		getNow := wait == 0 && !syncNow && s.m.needGet && !s.opts.NoAutoSync
		reportNow := wait == 0 && !syncNow && !getNow && len(s.pending) > 0
		s.mu.Unlock()

		switch {
		case syncNow:
			s.resync(ctx)
		case getNow:
			if ok, err := s.refresh(ctx); !ok {
				s.failed(err)
			}
		case reportNow:
			s.report(ctx)
		default:
			var timer <-chan time.Time
			stop := func() bool { return false }
			if wait > 0 {
				timer, stop = clk.NewTimer(wait)
			}
			select {
			case <-ctx.Done():
			case <-s.wake:
			case <-timer:
			}
			stop()
		}
	}
}

// failed schedules a retry after a temporary failure.
func (s *Shadow) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
	s.lastErr = err
	d := backoff(s.failures, s.c.opts.RetryBase, s.c.opts.RetryMax)
	s.retryAt = s.c.opts.Clock.Now().Add(d)
	s.c.opts.Logger.Warn("shadow request failed; retrying", "shadow", s.key, "in", d, "err", err)
}

// resync gets the document (delivering desired changes made while
// offline) and queues the full reported state for re-publishing.
func (s *Shadow) resync(ctx context.Context) {
	s.mu.Lock()
	s.syncWanted = false
	s.mu.Unlock()
	if ok, err := s.refresh(ctx); !ok {
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.syncWanted = true
		s.mu.Unlock()
		s.failed(err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = 0
	s.resyncs++
	defer s.progressed()
	// Re-publish the full reported state unless the document just fetched
	// already holds all of it (saves a request per reconnect of a device
	// whose state did not change).
	if len(s.local) > 0 && (s.m.needGet || !equal(anyOf(applyPatch(s.m.reported, s.local)), anyOf(s.m.reported))) {
		s.enqueue(s.local)
	}
}

// anyOf keeps a nil section comparable with equal.
func anyOf(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

// report sends the oldest pending reported patch. It waits for the rate
// limit before taking the patch, so changes made meanwhile coalesce into it.
func (s *Shadow) report(ctx context.Context) {
	if err := s.c.take(ctx, s); err != nil {
		return // closing
	}
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return
	}
	p := s.pending[0]
	s.pending = s.pending[1:]
	s.inflight = true
	body := map[string]any{"state": map[string]any{"reported": p}}
	if s.opts.VersionedReports && s.m.known && s.m.exists {
		body["version"] = s.m.docVersion
	}
	s.mu.Unlock()

	_, err := s.update(ctx, body, true)

	var rej *RejectedError
	switch {
	case err == nil:
		s.mu.Lock()
		s.inflight, s.failures, s.lastErr = false, 0, nil
		s.progressed()
		s.mu.Unlock()
	case errors.As(err, &rej) && rej.Code == 409:
		s.mu.Lock()
		s.putBack(p)
		s.mu.Unlock()
		if ok, gerr := s.refresh(ctx); !ok {
			s.failed(gerr)
		}
	case errors.As(err, &rej) && !rej.Temporary():
		s.mu.Lock()
		s.inflight, s.lastErr = false, err
		s.progressed()
		s.mu.Unlock()
		s.c.opts.Logger.Error("shadow reported update rejected; dropped", "shadow", s.key, "err", err)
		if s.opts.OnReportError != nil {
			s.opts.OnReportError(err)
		}
	default:
		s.mu.Lock()
		s.putBack(p)
		s.mu.Unlock()
		if ctx.Err() == nil {
			s.failed(err)
		}
	}
}
