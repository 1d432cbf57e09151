package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/shadowdoc"
)

// Conn is what the client needs from an MQTT connection. IOT adapts
// package iot's client; tests use an in-memory one.
type Conn interface {
	// Publish sends payload to topic at qos (0 or 1).
	Publish(ctx context.Context, topic string, qos byte, payload []byte) error
	// Subscribe subscribes to all filters in one request and routes their
	// messages to handler. The subscription must survive reconnects.
	// handler is called from the connection's goroutines and must not
	// block; the handler this package passes never does.
	Subscribe(ctx context.Context, filters []string, qos byte, handler func(topic string, payload []byte)) error
	// Unsubscribe removes the subscriptions.
	Unsubscribe(ctx context.Context, filters ...string) error
}

// Options configure a Client. The zero value is usable.
type Options struct {
	// Timeout bounds each request's wait for its reply (default 10 s). For
	// a shorter timeout on one request, pass a context with a deadline.
	Timeout time.Duration
	// AtMostOnce publishes and subscribes at QoS 0 instead of QoS 1.
	AtMostOnce bool
	// OnNotify receives every notify message: the thing's pending list
	// changed. OnNotifyNext receives every notify-next message: the next
	// execution to work on changed (Execution nil = none left). Both run
	// on one goroutine the client owns, one call at a time, in arrival
	// order; they may block and may call the client's requests. A message
	// that arrives while a callback is still running replaces an older
	// undelivered message of the same kind (each carries the whole current
	// state, so nothing is lost but intermediate states). They must not
	// call Close. Nil = ignore.
	OnNotify     func(PendingJobs)
	OnNotifyNext func(NextJob)
	// NoResync turns off the resync: by default, on New and on every
	// Reconnected, the client asks for the pending list and the next
	// execution and delivers them to OnNotify and OnNotifyNext (with
	// NextJob.Resync set), because notifications sent while the device was
	// offline are lost. A resync that fails (offline, timeout) is logged
	// and not retried until the next Reconnected.
	NoResync bool
	// Logger receives diagnostics (default: discard).
	Logger *slog.Logger
}

func (o *Options) fill() error {
	if o.Timeout < 0 {
		return fmt.Errorf("jobs options: timeout %v must not be negative", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Client is the Jobs client of one thing over one connection. Create it
// with New (or NewIOT), call Reconnected on every (re)connect and Close
// when done. All methods are safe for concurrent use.
type Client struct {
	conn      Conn
	thing     string
	opts      Options
	qos       byte
	tokenBase string
	seq       atomic.Uint64
	filters   []string

	ctx    context.Context // ends at Close; owns the dispatcher and resyncs
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	pending map[string]*waiter
	queue   []any         // undelivered PendingJobs / NextJob, one of each kind at most
	wake    chan struct{} // buffered 1: the queue has something
	nextSeq uint64        // notify-next messages received so far
	listSeq uint64        // notify messages received so far

	onClose []func()
}

type waiter struct {
	op, jobID string
	ch        chan *reply // buffered 1; receives at most once
}

type reply struct {
	kind string
	w    *wireReply
}

// New returns the client of thing on conn: it subscribes to the thing's
// reply and notification topics (bounded by ctx) and, unless
// Options.NoResync, starts a resync. Use one Client per thing and
// connection (package iot keeps one handler per filter).
func New(ctx context.Context, conn Conn, thing string, opts Options) (*Client, error) {
	if conn == nil {
		return nil, errors.New("jobs: nil connection")
	}
	if !shadowdoc.ValidThingName(thing) {
		return nil, fmt.Errorf("jobs: thing name %q: want 1–128 characters of a-z A-Z 0-9 : _ -", thing)
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("jobs: client token seed: %w", err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		conn: conn, thing: thing, opts: opts, qos: 1, tokenBase: hex.EncodeToString(rnd[:]),
		filters: replyFilters(thing), ctx: cctx, cancel: cancel,
		pending: map[string]*waiter{}, wake: make(chan struct{}, 1),
	}
	if opts.AtMostOnce {
		c.qos = 0
	}
	if err := conn.Subscribe(ctx, c.filters, c.qos, c.onMessage); err != nil {
		cancel()
		return nil, fmt.Errorf("jobs: thing %s: subscribe %v: %w", thing, c.filters, err)
	}
	c.wg.Add(1)
	go c.dispatch()
	c.Reconnected()
	return c, nil
}

// Thing returns the thing name.
func (c *Client) Thing() string { return c.thing }

// Reconnected tells the client the connection is (again) up. Unless
// Options.NoResync, it fetches the pending list and the next execution in
// the background and delivers them to the callbacks; a notification that
// arrives meanwhile wins over the older resync result. It does not block.
func (c *Client) Reconnected() {
	if c.opts.NoResync || (c.opts.OnNotify == nil && c.opts.OnNotifyNext == nil) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	listSeq, nextSeq := c.listSeq, c.nextSeq
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.resync(listSeq, nextSeq)
	}()
}

func (c *Client) resync(listSeq, nextSeq uint64) {
	if c.opts.OnNotify != nil {
		p, err := c.GetPending(c.ctx)
		if err != nil {
			c.logResync("get pending executions", err)
		} else {
			c.mu.Lock()
			if c.listSeq == listSeq {
				c.enqueueLocked(*p)
			}
			c.mu.Unlock()
		}
	}
	if c.opts.OnNotifyNext != nil {
		e, err := c.Describe(c.ctx, NextJobID, DescribeOptions{})
		if err != nil {
			c.logResync("describe $next", err)
			return
		}
		c.mu.Lock()
		if c.nextSeq == nextSeq {
			c.enqueueLocked(NextJob{Execution: e, Timestamp: time.Now(), Resync: true})
		}
		c.mu.Unlock()
	}
}

// logResync reports a failed resync; offline (the next Reconnected
// resyncs) and Close are expected and logged at debug level only.
func (c *Client) logResync(what string, err error) {
	level := slog.LevelWarn
	if errors.Is(err, iot.ErrNotConnected) || errors.Is(err, ErrClosed) || c.ctx.Err() != nil {
		level = slog.LevelDebug
	}
	c.opts.Logger.Log(context.Background(), level, "jobs resync: "+what+" failed", "thing", c.thing, "err", err)
}

// Close stops the callbacks and resyncs, fails waiting requests with
// ErrClosed and unsubscribes (bounded by ctx).
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	for _, f := range c.onClose {
		f()
	}
	if err := c.conn.Unsubscribe(ctx, c.filters...); err != nil {
		return fmt.Errorf("jobs: thing %s: unsubscribe on close: %w", c.thing, err)
	}
	return nil
}

// GetPending returns the thing's executions that are not terminal
// (GetPendingJobExecutions).
func (c *Client) GetPending(ctx context.Context) (*PendingJobs, error) {
	r, err := c.request(ctx, OpGetPending, "", map[string]any{})
	if err != nil {
		return nil, err
	}
	var f fieldErr
	p := &PendingJobs{
		InProgress: convertSummaries(r.InProgressJobs, &f),
		Queued:     convertSummaries(r.QueuedJobs, &f),
		Timestamp:  f.time("timestamp", r.Timestamp),
	}
	return p, c.badReply(OpGetPending, "", f.err)
}

// Describe returns one execution (DescribeJobExecution) with its job
// document unless o.OmitJobDocument. jobID NextJobID ("$next") selects the
// next pending execution; then a nil execution and nil error mean there
// is none. An unknown job is ErrResourceNotFound.
func (c *Client) Describe(ctx context.Context, jobID string, o DescribeOptions) (*JobExecution, error) {
	if jobID != NextJobID && !ValidJobID(jobID) {
		return nil, fmt.Errorf("jobs: describe: job ID %q: want 1–64 characters of a-z A-Z 0-9 _ - or %q", jobID, NextJobID)
	}
	body := map[string]any{"includeJobDocument": !o.OmitJobDocument}
	if o.ExecutionNumber > 0 {
		body["executionNumber"] = o.ExecutionNumber
	}
	r, err := c.request(ctx, OpDescribe, jobID, body)
	if err != nil {
		return nil, err
	}
	var f fieldErr
	e := r.Execution.convert(&f)
	return e, c.badReply(OpDescribe, jobID, f.err)
}

// StartNext starts the next pending execution and returns it with its job
// document (StartNextPendingJobExecution): the oldest QUEUED one moves to
// IN_PROGRESS, or an IN_PROGRESS one is returned as it is (its status
// details replaced when o.StatusDetails is set). A nil execution and nil
// error mean the thing has nothing pending.
func (c *Client) StartNext(ctx context.Context, o StartNextOptions) (*JobExecution, error) {
	body := map[string]any{}
	if o.StatusDetails != nil {
		body["statusDetails"] = o.StatusDetails
	}
	if o.StepTimeoutInMinutes != 0 {
		body["stepTimeoutInMinutes"] = o.StepTimeoutInMinutes
	}
	r, err := c.request(ctx, OpStartNext, "", body)
	if err != nil {
		return nil, err
	}
	var f fieldErr
	e := r.Execution.convert(&f)
	return e, c.badReply(OpStartNext, "", f.err)
}

// Update changes an execution's status and details (UpdateJobExecution).
// Rejections: ErrInvalidStateTransition (e.g. asking for QUEUED),
// ErrTerminalStateReached (already terminal, e.g. cancelled or timed out),
// ErrVersionMismatch (u.ExpectedVersion is stale; the error's
// ExecutionState has the current one), ErrResourceNotFound.
func (c *Client) Update(ctx context.Context, jobID string, u Update) (*UpdateResult, error) {
	if !ValidJobID(jobID) {
		return nil, fmt.Errorf("jobs: update: job ID %q: want 1–64 characters of a-z A-Z 0-9 _ -", jobID)
	}
	if !u.Status.Valid() {
		return nil, fmt.Errorf("jobs: update job %s: status %q: want IN_PROGRESS, SUCCEEDED, FAILED or REJECTED", jobID, u.Status)
	}
	body := map[string]any{"status": u.Status}
	if u.StatusDetails != nil {
		body["statusDetails"] = u.StatusDetails
	}
	if u.ExpectedVersion > 0 {
		body["expectedVersion"] = u.ExpectedVersion
	}
	if u.ExecutionNumber > 0 {
		body["executionNumber"] = u.ExecutionNumber
	}
	if u.IncludeJobExecutionState {
		body["includeJobExecutionState"] = true
	}
	if u.IncludeJobDocument {
		body["includeJobDocument"] = true
	}
	if u.StepTimeoutInMinutes != 0 {
		body["stepTimeoutInMinutes"] = u.StepTimeoutInMinutes
	}
	r, err := c.request(ctx, OpUpdate, jobID, body)
	if err != nil {
		return nil, err
	}
	var f fieldErr
	res := &UpdateResult{ExecutionState: r.ExecutionState.convert(&f), Timestamp: f.time("timestamp", r.Timestamp)}
	if len(r.JobDocument) > 0 && string(r.JobDocument) != "null" {
		res.JobDocument = r.JobDocument
	}
	return res, c.badReply(OpUpdate, jobID, f.err)
}

func (c *Client) badReply(op, jobID string, err error) error {
	if err == nil {
		return nil
	}
	what := op
	if jobID != "" {
		what = "job " + jobID + " " + op
	}
	return fmt.Errorf("jobs: thing %s: %s: reply has a malformed field (still returned as far as it parsed): %w", c.thing, what, err)
}

// newToken returns a clientToken unique across clients (random per client)
// and requests (a counter); at most 36 bytes (AWS allows 64).
func (c *Client) newToken() string {
	return "pj-" + c.tokenBase + "-" + strconv.FormatUint(c.seq.Add(1), 36)
}

// request publishes one request and waits for the reply with its token.
func (c *Client) request(ctx context.Context, op, jobID string, body map[string]any) (*wireReply, error) {
	token := c.newToken()
	body["clientToken"] = token
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("jobs: thing %s %s: encode request: %w", c.thing, op, err)
	}
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()

	w := &waiter{op: op, jobID: jobID, ch: make(chan *reply, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending[token] = w
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, token)
		c.mu.Unlock()
	}()

	if err := c.conn.Publish(ctx, requestTopic(c.thing, op, jobID), c.qos, payload); err != nil {
		return nil, fmt.Errorf("jobs: thing %s: %s: publish: %w", c.thing, op, err)
	}
	select {
	case r := <-w.ch:
		if r.kind == kindRejected {
			var f fieldErr
			return nil, &RejectedError{
				Op: op, Thing: c.thing, JobID: jobID, Code: r.w.Code, Message: r.w.Message, ClientToken: token,
				ExecutionState: r.w.ExecutionState.convert(&f), Timestamp: f.time("timestamp", r.w.Timestamp),
			}
		}
		return r.w, nil
	case <-ctx.Done():
		return nil, &TimeoutError{Op: op, Thing: c.thing, JobID: jobID, ClientToken: token, After: time.Since(start), Cause: parent.Err()}
	case <-c.ctx.Done():
		return nil, ErrClosed
	}
}

// onMessage handles every message on the client's filters. It runs on the
// connection's goroutines and never blocks.
func (c *Client) onMessage(topic string, payload []byte) {
	op, jobID, kind, ok := parseReplyTopic(c.thing, topic)
	if !ok {
		return
	}
	r, err := decodeReply(payload)
	if err != nil {
		c.opts.Logger.Warn("jobs message is not a valid JSON object; ignored", "topic", topic, "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch kind {
	case kindNotify:
		c.listSeq++
		if c.opts.OnNotify == nil {
			return
		}
		var f fieldErr
		p := PendingJobs{InProgress: convertSummaries(r.Jobs.InProgress, &f), Queued: convertSummaries(r.Jobs.Queued, &f), Timestamp: f.time("timestamp", r.Timestamp)}
		if f.err != nil {
			c.opts.Logger.Warn("jobs notify has a malformed field", "topic", topic, "err", f.err)
		}
		c.enqueueLocked(p)
	case kindNotifyNext:
		c.nextSeq++
		if c.opts.OnNotifyNext == nil {
			return
		}
		var f fieldErr
		n := NextJob{Execution: r.Execution.convert(&f), Timestamp: f.time("timestamp", r.Timestamp)}
		if f.err != nil {
			c.opts.Logger.Warn("jobs notify-next has a malformed field", "topic", topic, "err", f.err)
		}
		c.enqueueLocked(n)
	default:
		w := c.pending[r.ClientToken]
		if r.ClientToken == "" || w == nil || w.op != op || w.jobID != jobID {
			return // another client's reply, or one that came too late
		}
		delete(c.pending, r.ClientToken)
		w.ch <- &reply{kind: kind, w: r}
	}
}

// enqueueLocked queues a notification for the dispatcher, replacing an
// undelivered one of the same kind.
func (c *Client) enqueueLocked(v any) {
	if c.closed {
		return
	}
	q := c.queue[:0]
	for _, old := range c.queue {
		if !sameKind(old, v) {
			q = append(q, old)
		}
	}
	c.queue = append(q, v)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// dispatch calls the callbacks, one at a time, until Close.
func (c *Client) dispatch() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		}
		for {
			c.mu.Lock()
			if len(c.queue) == 0 || c.ctx.Err() != nil {
				c.mu.Unlock()
				break
			}
			v := c.queue[0]
			c.queue = c.queue[1:]
			c.mu.Unlock()
			switch v := v.(type) {
			case PendingJobs:
				c.opts.OnNotify(v)
			case NextJob:
				c.opts.OnNotifyNext(v)
			}
		}
	}
}

func sameKind(a, b any) bool {
	_, aList := a.(PendingJobs)
	_, bList := b.(PendingJobs)
	return aList == bList
}
