package shadowsync

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/shadow"
)

// fakeCloud is an in-memory MQTT broker with AWS's shadow service (the
// localcloud/shadow engine) attached: unit tests see AWS-exact responses
// without a network. Messages are delivered in order on one goroutine, as
// a real connection's dispatcher does.
type fakeCloud struct {
	t      *testing.T
	engine *shadow.Engine
	now    time.Time

	mu       sync.Mutex
	store    map[shadow.Key]*shadow.Shadow
	conns    []*fakeConn
	requests []fakeRequest // every request publish, in order
	// hold, when set, decides for each response message whether to hold it
	// back (see release).
	hold func(topic string, payload []byte) bool
	held []delivery
	// rejectNext makes the next requests fail with this code and message
	// before the engine sees them (throttling, service failures).
	rejectNext []fakeReject

	queue chan delivery
	done  chan struct{}
	wg    sync.WaitGroup
}

type fakeReject struct {
	code int
	msg  string
}

type fakeRequest struct {
	Topic   string
	Payload string
}

type delivery struct {
	topic   string
	payload []byte
	to      []func(string, []byte) // the subscribers when it was published
}

func newFakeCloud(t *testing.T) *fakeCloud {
	f := &fakeCloud{
		t: t, engine: shadow.New(shadow.Options{}), now: time.Unix(1_700_000_000, 0),
		store: map[shadow.Key]*shadow.Shadow{}, queue: make(chan delivery, 1024), done: make(chan struct{}),
	}
	f.wg.Add(1)
	go f.deliver()
	t.Cleanup(func() { close(f.done); f.wg.Wait() })
	return f
}

// deliver hands messages to their subscribers, in order.
func (f *fakeCloud) deliver() {
	defer f.wg.Done()
	for {
		select {
		case <-f.done:
			return
		case d := <-f.queue:
			for _, h := range d.to {
				h(d.topic, d.payload)
			}
		}
	}
}

// send queues a message for the connections online and subscribed now.
// Call with f.mu held.
func (f *fakeCloud) send(topic string, payload []byte) {
	d := delivery{topic: topic, payload: payload}
	for _, c := range f.conns {
		if h := c.subs[topic]; c.online && h != nil {
			d.to = append(d.to, h)
		}
	}
	f.queue <- d
}

// inject delivers a message as if the service had published it.
func (f *fakeCloud) inject(topic string, payload string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.send(topic, []byte(payload))
}

// release delivers the held messages.
func (f *fakeCloud) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.held {
		f.send(d.topic, d.payload)
	}
	f.held = nil
}

// heldTopics lists the held messages' topics.
func (f *fakeCloud) heldTopics() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, d := range f.held {
		out = append(out, d.topic)
	}
	return out
}

// requestLog returns the request publishes so far.
func (f *fakeCloud) requestLog() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

// document returns the stored shadow as a get would, or nil.
func (f *fakeCloud) document(k Key) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := f.engine.Handle(shadow.Key(k), shadow.OpGet, f.store[shadow.Key(k)], []byte(`{}`), f.now)
	if res.Code != 0 {
		return nil
	}
	v, err := decodeJSON(res.Messages[0].Payload)
	if err != nil {
		f.t.Fatalf("decode stored document: %v", err)
	}
	return v.(map[string]any)
}

// fakeConn is one client's connection to a fakeCloud; it implements Conn.
type fakeConn struct {
	cloud  *fakeCloud
	online bool
	subs   map[string]func(string, []byte)
	// log records subscribe and unsubscribe calls: "+a,b" and "-a,b".
	log []string
}

var errFakeOffline = errors.New("fake connection offline")

func (f *fakeCloud) connect() *fakeConn {
	c := &fakeConn{cloud: f, online: true, subs: map[string]func(string, []byte){}}
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	return c
}

func (c *fakeConn) setOnline(on bool) {
	c.cloud.mu.Lock()
	c.online = on
	c.cloud.mu.Unlock()
}

func (c *fakeConn) subLog() []string {
	c.cloud.mu.Lock()
	defer c.cloud.mu.Unlock()
	return append([]string(nil), c.log...)
}

func (c *fakeConn) Publish(ctx context.Context, topic string, qos byte, payload []byte) error {
	f := c.cloud
	f.mu.Lock()
	defer f.mu.Unlock()
	if !c.online {
		return errFakeOffline
	}
	f.requests = append(f.requests, fakeRequest{topic, string(payload)})
	k, op, ok := shadow.ParseTopic(topic)
	if !ok {
		return nil
	}
	res := f.engine.Handle(k, op, f.store[k], payload, f.now)
	if len(f.rejectNext) > 0 {
		r := f.rejectNext[0]
		f.rejectNext = f.rejectNext[1:]
		res = f.engine.Reject(k, op, payload, r.code, r.msg)
	}
	if res.Changed {
		f.store[k] = res.Next
	}
	for _, m := range res.Messages {
		if f.hold != nil && f.hold(m.Topic, m.Payload) {
			f.held = append(f.held, delivery{topic: m.Topic, payload: m.Payload})
			continue
		}
		f.send(m.Topic, m.Payload)
	}
	return nil
}

func (c *fakeConn) Subscribe(ctx context.Context, filters []string, qos byte, h func(string, []byte)) error {
	f := c.cloud
	f.mu.Lock()
	defer f.mu.Unlock()
	if !c.online {
		return errFakeOffline
	}
	for _, fl := range filters {
		c.subs[fl] = h
	}
	c.log = append(c.log, "+"+join(filters))
	return nil
}

func (c *fakeConn) Unsubscribe(ctx context.Context, filters ...string) error {
	f := c.cloud
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fl := range filters {
		delete(c.subs, fl)
	}
	c.log = append(c.log, "-"+join(filters))
	return nil
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// fakeClock is a manual clock: timers fire when Advance passes them.
// Every NewTimer is announced on created, so tests can wait until the code
// under test is waiting.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), created: make(chan time.Duration, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	t := &fakeTimer{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	select {
	case c.created <- d:
	default:
	}
	stop := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.timers {
			if x == t {
				c.timers = append(c.timers[:i], c.timers[i+1:]...)
				return true
			}
		}
		return false
	}
	return t.ch, stop
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.ch <- c.now
			continue
		}
		keep = append(keep, t)
	}
	c.timers = keep
}

// waitTimer waits until the code under test creates a timer, and returns
// its duration.
func (c *fakeClock) waitTimer(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.created:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no timer was started within 5s")
		return 0
	}
}

// waitTimerOf waits until the code under test starts a timer of d (the
// shadow's goroutine restarts its current wait whenever it is woken, so
// other timers may come first).
func (c *fakeClock) waitTimerOf(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case got := <-c.created:
			if got == d {
				return
			}
		case <-deadline:
			t.Fatalf("no timer of %v was started within 5s", d)
		}
	}
}
