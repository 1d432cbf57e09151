package iot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pinshadow/pinshadow/iot/sigv4"
)

// State is the connection state.
type State int

const (
	// StateIdle: created, Connect not called yet.
	StateIdle State = iota
	// StateConnecting: a connection attempt is in progress.
	StateConnecting
	// StateOnline: connected and subscriptions restored.
	StateOnline
	// StateOffline: the last attempt failed or the connection dropped; the
	// client waits out the backoff and retries.
	StateOffline
	// StateClosed: Close was called.
	StateClosed
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateConnecting:
		return "connecting"
	case StateOnline:
		return "online"
	case StateOffline:
		return "offline"
	case StateClosed:
		return "closed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// EventType says what an Event reports.
type EventType int

const (
	// EventOnline: connected and subscriptions restored (every connect,
	// not just the first). A shadow client re-gets and re-reports here.
	EventOnline EventType = iota + 1
	// EventOffline: an established connection dropped; Err says why,
	// RetryIn is the backoff before the next attempt.
	EventOffline
	// EventConnectFailed: an attempt failed; Err says why.
	EventConnectFailed
	// EventSubscribeFailed: restoring a subscription after a reconnect
	// failed (Err is a *SubscribeRejectedError or a timeout).
	EventSubscribeFailed
	// EventQueueDrained: the offline queue became empty after draining.
	EventQueueDrained
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case EventOnline:
		return "online"
	case EventOffline:
		return "offline"
	case EventConnectFailed:
		return "connect-failed"
	case EventSubscribeFailed:
		return "subscribe-failed"
	case EventQueueDrained:
		return "queue-drained"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event is a connection event, delivered on Client.Events.
type Event struct {
	Type           EventType
	Time           time.Time
	Err            error
	SessionPresent bool          // EventOnline: the broker kept our session
	RetryIn        time.Duration // EventOffline/EventConnectFailed
}

// Stats is a snapshot of the client's state and counters.
type Stats struct {
	State           State
	Connects        uint64 // successful connections
	ConnectFailures uint64 // failed attempts
	Drops           uint64 // established connections that were lost
	Queued          int    // messages in the offline queue now
	QueuedTotal     uint64 // messages ever put in the offline queue
	Dropped         uint64 // offline messages discarded by the queue policy
	Drained         uint64 // queued messages sent after a reconnect
	MessagesDropped uint64 // received messages dropped because handlers lagged
	EventsDropped   uint64 // events dropped because a consumer fell behind
	LastError       error
	LastErrorAt     time.Time
	OnlineSince     time.Time // zero unless online
}

// Message is a received MQTT message.
type Message struct {
	Topic     string
	Payload   []byte
	QoS       QoS
	Retained  bool
	Duplicate bool
}

// Handler receives messages for a subscription. Handlers run one at a time
// on the client's dispatcher goroutine, in arrival order; they may call
// Publish/Subscribe (the network is not blocked while they run) but must
// not call Close.
type Handler func(Message)

// Subscription is a filter, its QoS and its handler.
type Subscription struct {
	Filter  string
	QoS     QoS
	Handler Handler
}

// PublishResult says what Publish did with a message.
type PublishResult int

const (
	// Sent: written to the connection (QoS 0) or acknowledged (QoS 1).
	Sent PublishResult = iota + 1
	// Queued: stored in the offline queue; it will be sent in order after
	// the next (re)connect.
	Queued
)

// String returns "sent" or "queued".
func (r PublishResult) String() string {
	switch r {
	case Sent:
		return "sent"
	case Queued:
		return "queued"
	}
	return "none"
}

type publishOptions struct {
	retain  bool
	noQueue bool
}

// PublishOption modifies one Publish call.
type PublishOption func(*publishOptions)

// WithRetain sets the MQTT retain flag.
func WithRetain() PublishOption { return func(o *publishOptions) { o.retain = true } }

// WithoutQueue makes Publish fail with ErrNotConnected instead of queueing
// when offline (for time-sensitive requests such as shadow get/update).
func WithoutQueue() PublishOption { return func(o *publishOptions) { o.noQueue = true } }

type subscription struct {
	Subscription
	gen uint64 // connection generation it was last subscribed in
}

// connWatch turns paho's connection-lost callback into a closed channel.
type connWatch struct {
	once sync.Once
	dead chan struct{}
	err  error
}

func newConnWatch() *connWatch { return &connWatch{dead: make(chan struct{})} }

func (w *connWatch) lost(err error) {
	w.once.Do(func() {
		if err == nil {
			err = errors.New("connection lost")
		}
		w.err = err
		close(w.dead)
	})
}

// Client is a connection to AWS IoT (or another MQTT broker) that reconnects
// by itself forever, restores subscriptions and queues publishes while
// offline. Create it with New, start it with Connect, stop it with Close.
// All methods are safe for concurrent use.
type Client struct {
	cfg      Config
	host     string
	port     int
	endpoint string // host:port
	tls      *tls.Config
	creds    sigv4.Provider
	region   string
	now      func() time.Time
	rand     func() float64
	queue    *offlineQueue // nil when disabled

	runCtx    context.Context
	runCancel context.CancelFunc
	closeCh   chan struct{}
	done      chan struct{} // run loop finished
	wake      chan struct{} // something was queued
	inbox     chan Message
	dispDone  chan struct{}
	events    chan Event // the Events channel; also in watchers

	mu       sync.Mutex
	state    State
	started  bool
	closing  bool
	conn     mqtt.Client
	watch    *connWatch
	gen      uint64
	subs     []*subscription
	changed  chan struct{} // closed and replaced on state change / attempt failure
	attempts uint64
	lastFail error       // error of the last failed connection attempt
	dest     destination // where the latest attempt went
	stats    Stats

	evMu         sync.Mutex
	eventsClosed bool
	watchers     []chan Event
}

// New validates cfg, loads the TLS files and opens the offline queue. It
// does not connect; call Connect.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	host, port, _ := cfg.hostPort()
	c := &Client{
		cfg:      cfg,
		host:     host,
		port:     port,
		endpoint: net.JoinHostPort(host, strconv.Itoa(port)),
		now:      time.Now,
		rand:     rand.Float64,
		closeCh:  make(chan struct{}),
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
		inbox:    make(chan Message, cfg.MessageBuffer),
		dispDone: make(chan struct{}),
		events:   make(chan Event, cfg.EventBuffer),
		changed:  make(chan struct{}),
	}
	tlsCfg, err := tlsConfigs(cfg, host, port, c.now())
	if err != nil {
		return nil, err
	}
	c.tls = tlsCfg
	c.dest = destination{endpoint: c.endpoint, name: c.endpoint, tls: tlsCfg}
	if cfg.Router != nil {
		c.dest.name = "" // nothing chosen before the first attempt
	}
	if cfg.Transport.usesSigV4() {
		c.creds = cfg.Credentials
		if c.creds == nil {
			c.creds = sigv4.Default(cfg.Getenv, "")
		}
		c.region = cfg.Region
		if c.region == "" {
			c.region = sigv4.RegionFromEnv(cfg.Getenv)
		}
		if c.region == "" {
			c.region = sigv4.RegionFromIoTEndpoint(host)
		}
		if c.region == "" {
			return nil, &ConfigError{Field: "region", Value: "", Reason: "is required for " + cfg.Transport.String() + ": set it, or AWS_REGION, or use an *.iot.<region>.amazonaws.com endpoint"}
		}
	}
	if !cfg.Queue.Disabled {
		var store queueStore = &memoryStore{}
		if cfg.Queue.Path != "" {
			bs, err := openBoltStore(cfg.Queue.Path)
			if err != nil {
				return nil, err
			}
			store = bs
		}
		c.queue = &offlineQueue{store: store, size: cfg.Queue.Size, drop: cfg.Queue.Drop}
	}
	c.watchers = []chan Event{c.events}
	c.runCtx, c.runCancel = context.WithCancel(context.Background())
	return c, nil
}

// Events returns the channel of connection events. It is buffered
// (Config.EventBuffer); when the owner falls behind the oldest events are
// dropped, so a slow consumer never blocks the connection. It is closed
// after Close.
func (c *Client) Events() <-chan Event { return c.events }

// Watch returns an additional event channel with its own buffer, for a
// second consumer (e.g. the shadow client and the agent's status both
// following online/offline). It behaves like Events: never blocks the
// connection, drops its oldest event when full, is closed by Close. stop
// closes it early.
func (c *Client) Watch(buffer int) (events <-chan Event, stop func()) {
	ch := make(chan Event, max(buffer, 1))
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.eventsClosed {
		close(ch)
		return ch, func() {}
	}
	c.watchers = append(c.watchers, ch)
	return ch, func() {
		c.evMu.Lock()
		defer c.evMu.Unlock()
		for i, w := range c.watchers {
			if w == ch {
				c.watchers = append(c.watchers[:i], c.watchers[i+1:]...)
				close(ch)
				return
			}
		}
	}
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Stats returns a snapshot of the state and counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	s := c.stats
	s.State = c.state
	c.mu.Unlock()
	if c.queue != nil {
		s.Queued = c.queue.len()
	}
	return s
}

// Connect starts the connection loop (once) and waits until the client is
// online, an attempt fails with an error retrying cannot fix (TLS,
// credentials, CONNACK refusal), or ctx (bounded by Config.ConnectTimeout)
// ends. Whatever it returns, the client keeps (re)connecting in the
// background with backoff until Close, so a device that boots without
// network comes online by itself.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	if !c.started {
		c.started = true
		go c.run()
		go c.dispatch()
	}
	startAttempts := c.attempts
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	for {
		c.mu.Lock()
		state, lastErr, attempts, changed := c.state, c.lastFail, c.attempts, c.changed
		c.mu.Unlock()
		switch {
		case state == StateOnline:
			return nil
		case state == StateClosed:
			return ErrClosed
		case attempts > startAttempts && lastErr != nil && permanent(lastErr):
			return lastErr
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w (%s to %s): last error: %w", ErrConnectTimeout, c.cfg.Transport, c.currentEndpoint(), lastErr)
			}
			return fmt.Errorf("%w (%s to %s): %w", ErrConnectTimeout, c.cfg.Transport, c.currentEndpoint(), ctx.Err())
		}
	}
}

// Close stops reconnecting, sends DISCONNECT if online (bounded by
// Config.DisconnectTimeout), closes the offline queue (an on-disk queue
// keeps its messages for the next run) and closes Events. It waits for all
// goroutines until ctx ends (then ErrDisconnectTimeout). Calling it again
// waits the same way. It must not be called from a Handler.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	first := !c.closing
	c.closing = true
	started := c.started
	c.mu.Unlock()
	if first {
		c.runCancel()
		close(c.closeCh)
		if !started {
			c.finish()
			close(c.done)
		}
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrDisconnectTimeout, ctx.Err())
	}
}

// finish releases everything once the loops have stopped.
func (c *Client) finish() {
	if c.queue != nil {
		if err := c.queue.close(); err != nil {
			c.recordError(err)
		}
	}
	c.mu.Lock()
	c.state = StateClosed
	c.conn = nil
	c.notifyLocked()
	c.mu.Unlock()
	c.evMu.Lock()
	c.eventsClosed = true
	for _, w := range c.watchers {
		close(w)
	}
	c.watchers = nil
	c.evMu.Unlock()
}

// notifyLocked wakes Connect waiters. c.mu must be held.
func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Client) setState(s State) {
	c.mu.Lock()
	c.state = s
	c.notifyLocked()
	c.mu.Unlock()
}

func (c *Client) recordError(err error) {
	c.mu.Lock()
	c.stats.LastError = err
	c.stats.LastErrorAt = c.now()
	c.mu.Unlock()
}

// emit delivers ev to every watcher without ever blocking: a full channel
// loses its oldest event.
func (c *Client) emit(ev Event) {
	ev.Time = c.now()
	c.evMu.Lock()
	defer c.evMu.Unlock()
	dropped := 0
	for _, w := range c.watchers {
		dropped += sendDropOldest(w, ev)
	}
	if dropped > 0 {
		c.mu.Lock()
		c.stats.EventsDropped += uint64(dropped)
		c.mu.Unlock()
	}
}

// sendDropOldest sends ev on ch, discarding old events to make room; it
// returns how many were discarded. Only emit sends, under evMu, so the
// loop ends: the receiver can only make more room.
func sendDropOldest(ch chan Event, ev Event) (dropped int) {
	for {
		select {
		case ch <- ev:
			return dropped
		default:
		}
		select {
		case <-ch:
			dropped++
		default:
		}
	}
}

// receive is paho's message handler (router goroutine): never blocks.
func (c *Client) receive(_ mqtt.Client, m mqtt.Message) {
	msg := Message{Topic: m.Topic(), Payload: m.Payload(), QoS: QoS(m.Qos()), Retained: m.Retained(), Duplicate: m.Duplicate()}
	select {
	case c.inbox <- msg:
	default:
		c.mu.Lock()
		c.stats.MessagesDropped++
		c.mu.Unlock()
	}
}

// dispatch runs handlers in arrival order until Close.
func (c *Client) dispatch() {
	defer close(c.dispDone)
	for {
		select {
		case <-c.closeCh:
			return
		case m := <-c.inbox:
			c.mu.Lock()
			var hs []Handler
			for _, s := range c.subs {
				if topicMatches(s.Filter, m.Topic) {
					hs = append(hs, s.Handler)
				}
			}
			c.mu.Unlock()
			for _, h := range hs {
				h(m)
			}
		}
	}
}

// Publish sends payload to topic. Online, it returns Sent once the message
// is written (QoS 0) or acknowledged (QoS 1; ErrOperationTimeout after
// Config.OperationTimeout). Offline — including before the first connect —
// and while earlier queued messages are still draining (to keep order), it
// puts the message in the offline queue and returns Queued; it fails with
// ErrQueueFull (DropNewest) or ErrQueueDisabled, or ErrNotConnected with
// WithoutQueue. With DropOldest a full queue discards its oldest message
// (counted in Stats.Dropped) and returns Queued.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte, qos QoS, opts ...PublishOption) (PublishResult, error) {
	if err := validateTopic(topic); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("iot: publish to %q: %w", topic, err)
	}
	if qos > QoS1 {
		return 0, &ConfigError{Field: "qos", Value: strconv.Itoa(int(qos)), Reason: "must be 0 or 1 (AWS IoT has no QoS 2)"}
	}
	var o publishOptions
	for _, f := range opts {
		f(&o)
	}
	m := queuedMessage{Topic: topic, Payload: payload, QoS: qos, Retain: o.retain}

	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	online := c.state == StateOnline && (o.noQueue || c.queue == nil || c.queue.len() == 0)
	cli, watch := c.conn, c.watch
	c.mu.Unlock()
	if !online {
		return c.enqueue(m, o)
	}

	tok := cli.Publish(topic, byte(qos), o.retain, payload)
	err := c.await(ctx, tok, watch)
	switch {
	case err == nil:
		return Sent, nil
	case errors.Is(err, mqtt.ErrNotConnected) || errors.Is(err, errConnLost):
		// The connection went away under us: queue it (at least once).
		return c.enqueue(m, o)
	case errors.Is(err, ErrOperationTimeout):
		return 0, fmt.Errorf("iot: publish to %q: no PUBACK within %s: %w", topic, c.cfg.OperationTimeout, err)
	}
	return 0, fmt.Errorf("iot: publish to %q: %w", topic, err)
}

func (c *Client) enqueue(m queuedMessage, o publishOptions) (PublishResult, error) {
	if o.noQueue {
		return 0, fmt.Errorf("iot: publish to %q: %w (queueing not allowed for this message)", m.Topic, ErrNotConnected)
	}
	if c.queue == nil {
		return 0, fmt.Errorf("iot: publish to %q: %w: %w", m.Topic, ErrNotConnected, ErrQueueDisabled)
	}
	evicted, err := c.queue.enqueue(m)
	c.mu.Lock()
	c.stats.Dropped += uint64(evicted)
	if err != nil {
		if errors.Is(err, ErrQueueFull) {
			c.stats.Dropped++
		}
		c.stats.LastError, c.stats.LastErrorAt = err, c.now()
	} else {
		c.stats.QueuedTotal++
	}
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return Queued, nil
}

// errConnLost marks a token wait ended by a connection loss.
var errConnLost = errors.New("connection lost while waiting for the broker")

// await waits for tok with ctx, the operation timeout and the connection.
func (c *Client) await(ctx context.Context, tok mqtt.Token, watch *connWatch) error {
	t := time.NewTimer(c.cfg.OperationTimeout)
	defer t.Stop()
	var dead <-chan struct{}
	if watch != nil {
		dead = watch.dead
	}
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			if watch != nil && isClosedChan(watch.dead) {
				return fmt.Errorf("%w: %v", errConnLost, err)
			}
			return err
		}
		return nil
	case <-dead:
		return fmt.Errorf("%w: %v", errConnLost, watch.err)
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closeCh:
		return ErrClosed
	case <-t.C:
		return ErrOperationTimeout
	}
}

func isClosedChan(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Subscribe subscribes filter with handler; see SubscribeMany.
func (c *Client) Subscribe(ctx context.Context, filter string, qos QoS, handler Handler) error {
	return c.SubscribeMany(ctx, []Subscription{{Filter: filter, QoS: qos, Handler: handler}})
}

// SubscribeMany records the subscriptions (replacing the handler of an
// existing filter) and, when online, subscribes and waits for the SUBACK
// (at most 8 filters per SUBSCRIBE, AWS's limit). Offline it returns nil at
// once: recorded subscriptions are (re)made on every connect, whatever the
// clean-session setting. Filters the broker refuses are forgotten and
// reported as *SubscribeRejectedError (errors.Is ErrSubscribeRejected).
func (c *Client) SubscribeMany(ctx context.Context, subs []Subscription) error {
	for _, s := range subs {
		if err := validateFilter(s.Filter); err != nil {
			return err
		}
		if s.QoS > QoS1 {
			return &ConfigError{Field: "qos", Value: strconv.Itoa(int(s.QoS)), Reason: "must be 0 or 1"}
		}
		if s.Handler == nil {
			return &ConfigError{Field: "handler", Value: s.Filter, Reason: "must not be nil"}
		}
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	recs := make([]*subscription, 0, len(subs))
	for _, s := range subs {
		recs = append(recs, c.recordLocked(s))
	}
	online := c.state == StateOnline
	cli, watch, gen := c.conn, c.watch, c.gen
	c.mu.Unlock()
	if !online {
		return nil
	}
	err := c.subscribe(ctx, cli, watch, gen, recs)
	if errors.Is(err, errConnLost) {
		return nil // restored on reconnect
	}
	return err
}

func (c *Client) recordLocked(s Subscription) *subscription {
	for _, r := range c.subs {
		if r.Filter == s.Filter {
			r.QoS, r.Handler, r.gen = s.QoS, s.Handler, 0
			return r
		}
	}
	r := &subscription{Subscription: s}
	c.subs = append(c.subs, r)
	return r
}

// subscribe sends SUBSCRIBE in batches of 8 and marks accepted records with
// gen; rejected records are removed.
func (c *Client) subscribe(ctx context.Context, cli mqtt.Client, watch *connWatch, gen uint64, recs []*subscription) error {
	var rejected []string
	for start := 0; start < len(recs); start += 8 {
		batch := recs[start:min(start+8, len(recs))]
		filters := make(map[string]byte, len(batch))
		for _, r := range batch {
			filters[r.Filter] = byte(r.QoS)
		}
		tok := cli.SubscribeMultiple(filters, nil)
		if err := c.await(ctx, tok, watch); err != nil {
			if errors.Is(err, ErrOperationTimeout) {
				return fmt.Errorf("iot: subscribe: no SUBACK within %s: %w", c.cfg.OperationTimeout, err)
			}
			return fmt.Errorf("iot: subscribe: %w", err)
		}
		result := tok.(*mqtt.SubscribeToken).Result()
		c.mu.Lock()
		for _, r := range batch {
			if code, ok := result[r.Filter]; ok && code == 0x80 {
				rejected = append(rejected, r.Filter)
				c.removeLocked(r)
				continue
			}
			r.gen = gen
		}
		c.mu.Unlock()
	}
	if len(rejected) > 0 {
		err := &SubscribeRejectedError{Filters: rejected}
		c.recordError(err)
		return err
	}
	return nil
}

func (c *Client) removeLocked(r *subscription) {
	for i, s := range c.subs {
		if s == r {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			return
		}
	}
}

// Unsubscribe forgets the filters and, when online, sends UNSUBSCRIBE and
// waits for the UNSUBACK. Offline it only forgets them (with a persistent
// session the broker may still deliver; such messages are ignored).
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return ErrClosed
	}
	for _, f := range filters {
		for _, r := range c.subs {
			if r.Filter == f {
				c.removeLocked(r)
				break
			}
		}
	}
	online := c.state == StateOnline
	cli, watch := c.conn, c.watch
	c.mu.Unlock()
	if !online || len(filters) == 0 {
		return nil
	}
	err := c.await(ctx, cli.Unsubscribe(filters...), watch)
	switch {
	case err == nil, errors.Is(err, errConnLost):
		return nil
	case errors.Is(err, ErrOperationTimeout):
		return fmt.Errorf("iot: unsubscribe: no UNSUBACK within %s: %w", c.cfg.OperationTimeout, err)
	}
	return fmt.Errorf("iot: unsubscribe: %w", err)
}
