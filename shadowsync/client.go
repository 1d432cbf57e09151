package shadowsync

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
)

// Conn is what the client needs from an MQTT connection. Package iot's
// client satisfies it; tests use an in-memory one.
type Conn interface {
	// Publish sends payload to topic at qos (0 or 1).
	Publish(ctx context.Context, topic string, qos byte, payload []byte) error
	// Subscribe subscribes to all filters in one request and routes their
	// messages to handler. The subscription must survive reconnects.
	// handler is called from the connection's goroutines and must not
	// block; the handlers this package passes never do.
	Subscribe(ctx context.Context, filters []string, qos byte, handler func(topic string, payload []byte)) error
	// Unsubscribe removes the subscriptions.
	Unsubscribe(ctx context.Context, filters ...string) error
}

// Options configure a Client. The zero value is usable.
type Options struct {
	// Timeout bounds each request's wait for its response (default 10 s).
	// For a shorter timeout on one request, pass a context with a deadline.
	Timeout time.Duration
	// AtMostOnce publishes and subscribes at QoS 0 instead of QoS 1.
	AtMostOnce bool
	// RatePerThing is the most requests per second sent for one thing, all
	// its shadows and all operations together (default 10; AWS rejects
	// more than 20 with 429).
	RatePerThing float64
	// Burst is how many requests may go at once after a quiet period
	// (default: RatePerThing rounded up).
	Burst int
	// RetryBase and RetryMax bound the wait before retrying a report or a
	// resync that failed for a temporary reason (defaults 1 s and 30 s).
	// A reconnect retries at once.
	RetryBase, RetryMax time.Duration
	// Clock drives rate limiting and retry waits (default: real time).
	Clock Clock
	// Logger receives diagnostics (default: discard).
	Logger *slog.Logger
	// Observer, when set, is told when each request starts and ends (for
	// metrics). It is called on the requesting goroutine and must not block.
	Observer RequestObserver
}

// RequestObserver sees every shadow request (get, update, delete).
type RequestObserver interface {
	// RequestStarted: a request for op is about to be published.
	RequestStarted(op string)
	// RequestDone: the request for op ended after took; code is 200 when
	// accepted, AWS's error code when rejected, 0 when no answer came
	// (timeout, publish failure, client closed).
	RequestDone(op string, code int, took time.Duration)
}

func (o *Options) fill() error {
	if o.Timeout < 0 || o.RatePerThing < 0 || o.Burst < 0 || o.RetryBase < 0 || o.RetryMax < 0 {
		return fmt.Errorf("shadowsync options %+v: durations, rate and burst must not be negative", *o)
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.RatePerThing == 0 {
		o.RatePerThing = 10
	}
	if o.Burst == 0 {
		o.Burst = int(o.RatePerThing)
		if float64(o.Burst) < o.RatePerThing {
			o.Burst++
		}
	}
	if o.RetryBase == 0 {
		o.RetryBase = time.Second
	}
	if o.RetryMax == 0 {
		o.RetryMax = 30 * time.Second
	}
	o.RetryMax = max(o.RetryMax, o.RetryBase)
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Client talks to any number of shadows over one connection. Create it
// with New, open shadows with Open, call Reconnected on every (re)connect
// and Close when done.
type Client struct {
	conn      Conn
	opts      Options
	qos       byte
	tokenBase string
	seq       atomic.Uint64

	ctx    context.Context // ends at Close; owns the shadow workers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	shadows map[Key]*Shadow
	pending map[string]*waiter
	buckets map[string]*bucket

	subMu sync.Mutex     // serialises on-demand (un)subscribes
	subs  map[string]int // on-demand filter → requests using it

	onClose []func() // run by Close after the goroutines stopped
}

// waiter is one request waiting for its token-matched response.
type waiter struct {
	key Key
	op  string
	ch  chan response // buffered 1; receives at most once
}

// response is a decoded /accepted or /rejected message.
type response struct {
	kind string
	raw  []byte
	doc  map[string]any
}

// New returns a client on conn. It starts no goroutines until a shadow is
// opened.
func New(conn Conn, opts Options) (*Client, error) {
	if conn == nil {
		return nil, errors.New("shadowsync: nil connection")
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("shadowsync: client token seed: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		conn: conn, opts: opts, qos: 1, tokenBase: hex.EncodeToString(rnd[:]),
		ctx: ctx, cancel: cancel,
		shadows: map[Key]*Shadow{}, pending: map[string]*waiter{},
		buckets: map[string]*bucket{}, subs: map[string]int{},
	}
	if opts.AtMostOnce {
		c.qos = 0
	}
	return c, nil
}

// newToken returns a clientToken unique across clients (random per
// client) and requests (a counter); at most 36 bytes.
func (c *Client) newToken() string {
	return "ps-" + c.tokenBase + "-" + strconv.FormatUint(c.seq.Add(1), 36)
}

// Reconnected tells every open shadow that the connection is (again) up:
// each gets its document, delivers a delta for desired changes made while
// offline, and re-publishes its full reported state (unless the document
// already holds it). Pending report retries go at once. Call it from the connection's online event; it does
// not block.
func (c *Client) Reconnected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.shadows {
		s.mu.Lock()
		if !s.opts.NoAutoSync {
			s.syncWanted = true
		}
		s.retryAt = time.Time{}
		s.mu.Unlock()
		s.kick()
	}
}

// Close stops every shadow's background work, fails waiting requests
// with ErrClosed and unsubscribes the shadows' topics (bounded by ctx).
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	var filters []string
	for k, s := range c.shadows {
		filters = append(filters, s.filters...)
		delete(c.shadows, k)
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	for _, f := range c.onClose {
		f()
	}
	if len(filters) == 0 {
		return nil
	}
	if err := c.conn.Unsubscribe(ctx, filters...); err != nil {
		return fmt.Errorf("shadowsync: unsubscribe on close: %w", err)
	}
	return nil
}

// take waits until the thing's rate limit allows one more request for s.
func (c *Client) take(ctx context.Context, s *Shadow) error {
	thing := s.key.Thing
	for {
		c.mu.Lock()
		b := c.buckets[thing]
		if b == nil {
			b = newBucket(c.opts.RatePerThing, c.opts.Burst, c.opts.Clock.Now())
			c.buckets[thing] = b
		}
		wait := b.take(c.opts.Clock.Now())
		c.mu.Unlock()
		if wait == 0 {
			return nil
		}
		ch, stop := c.opts.Clock.NewTimer(wait)
		select {
		case <-ch:
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-s.ctx.Done():
			stop()
			return ErrClosed
		}
	}
}

// acquire subscribes an on-demand request's filters (shared with
// concurrent requests); release undoes it.
func (c *Client) acquire(ctx context.Context, filters []string) error {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	var todo []string
	for _, f := range filters {
		if c.subs[f] == 0 {
			todo = append(todo, f)
		}
	}
	if len(todo) > 0 {
		if err := c.conn.Subscribe(ctx, todo, c.qos, c.onMessage); err != nil {
			return fmt.Errorf("subscribe %v: %w", todo, err)
		}
	}
	for _, f := range filters {
		c.subs[f]++
	}
	return nil
}

func (c *Client) release(filters []string) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	var todo []string
	for _, f := range filters {
		c.subs[f]--
		if c.subs[f] <= 0 {
			delete(c.subs, f)
			todo = append(todo, f)
		}
	}
	if len(todo) == 0 {
		return
	}
	// The request is over whatever its context says; bound the unsubscribe
	// by the request timeout instead.
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if err := c.conn.Unsubscribe(ctx, todo...); err != nil {
		c.opts.Logger.Warn("shadow on-demand unsubscribe failed", "filters", todo, "err", err)
	}
}

// onMessage is the handler for every shadow response topic. It runs on the
// connection's goroutines and never blocks: it updates the mirror, offers
// deltas latest-wins and hands responses to buffered waiters.
func (c *Client) onMessage(topic string, payload []byte) {
	k, op, kind, ok := parseResponseTopic(topic)
	if !ok {
		return
	}
	v, err := decodeJSON(payload)
	doc, isObj := v.(map[string]any)
	if err != nil || !isObj {
		c.opts.Logger.Warn("shadow response is not a JSON object; ignored", "topic", topic, "err", err)
		return
	}
	token, _ := doc["clientToken"].(string)

	c.mu.Lock()
	s := c.shadows[k]
	var w *waiter
	if kind != kindDelta && token != "" {
		if w = c.pending[token]; w != nil && w.key == k && w.op == op {
			delete(c.pending, token)
		} else {
			w = nil
		}
	}
	c.mu.Unlock()

	if s != nil {
		s.observe(op, kind, doc)
	}
	if w != nil {
		w.ch <- response{kind: kind, raw: payload, doc: doc}
	}
}

// request publishes one request for shadow s and waits for its response.
// It first waits for the thing's rate limit unless the caller already did
// (preTaken).
func (c *Client) request(ctx context.Context, s *Shadow, op string, body map[string]any, preTaken bool) (_ response, err error) {
	token := c.newToken()
	body["clientToken"] = token
	payload, err := json.Marshal(body)
	if err != nil {
		return response{}, fmt.Errorf("shadow %s %s: encode request: %w", s.key, op, err)
	}
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()

	if s.opts.OnDemand {
		filters := opFilters(s.key, op)
		if err := c.acquire(ctx, filters); err != nil {
			return response{}, fmt.Errorf("shadow %s %s: %w", s.key, op, err)
		}
		defer c.release(filters)
	}
	w := &waiter{key: s.key, op: op, ch: make(chan response, 1)}
	c.mu.Lock()
	if c.closed || s.ctx.Err() != nil {
		c.mu.Unlock()
		return response{}, ErrClosed
	}
	c.pending[token] = w
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, token)
		c.mu.Unlock()
	}()

	// timeout reports the caller's context error as the cause when the
	// caller's context ended the wait, nothing when the request timeout did.
	timeout := func() error {
		return &TimeoutError{Op: op, Shadow: s.key, ClientToken: token, After: time.Since(start), Cause: parent.Err()}
	}
	if !preTaken {
		if err := c.take(ctx, s); err != nil {
			if errors.Is(err, ErrClosed) {
				return response{}, err
			}
			return response{}, timeout()
		}
	}
	if ob := c.opts.Observer; ob != nil {
		ob.RequestStarted(op)
		code, sent := 0, time.Now()
		defer func() { ob.RequestDone(op, code, time.Since(sent)) }()
		defer func() {
			if rej := (*RejectedError)(nil); errors.As(err, &rej) {
				code = rej.Code
			} else if err == nil {
				code = 200
			}
		}()
	}
	if err := c.conn.Publish(ctx, s.key.Prefix()+"/"+op, c.qos, payload); err != nil {
		return response{}, fmt.Errorf("shadow %s %s: publish: %w", s.key, op, err)
	}
	select {
	case r := <-w.ch:
		if r.kind == kindRejected {
			return r, rejection(s.key, op, token, r.doc)
		}
		return r, nil
	case <-ctx.Done():
		return response{}, timeout()
	case <-s.ctx.Done():
		return response{}, ErrClosed
	}
}

// rejection builds the typed error from an error document.
func rejection(k Key, op, token string, doc map[string]any) error {
	e := &RejectedError{Op: op, Shadow: k, ClientToken: token}
	if n, ok := doc["code"].(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			e.Code = int(i)
		}
	}
	e.Message, _ = doc["message"].(string)
	return e
}

// int64Of reads an integer field of a response.
func int64Of(doc map[string]any, key string) int64 {
	n, ok := doc[key].(json.Number)
	if !ok {
		return 0
	}
	i, err := n.Int64()
	if err != nil {
		return 0
	}
	return i
}
