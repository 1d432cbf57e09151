package iot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPublishSubscribeRoundTrip(t *testing.T) {
	b := startBroker(t, nil, nil)
	got := make(chan string, 10)
	b.collect("up/#", got)
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportTCP})

	recv := make(chan Message, 10)
	// Subscribing before Connect only records; it is made on connect.
	if err := c.Subscribe(ctxT(t), "down/+", QoS1, func(m Message) { recv <- m }); err != nil {
		t.Fatal(err)
	}
	connect(t, c)
	if ev := waitEvent(t, c, EventOnline); ev.Err != nil {
		t.Fatalf("online event carries error %v", ev.Err)
	}
	if s := c.Stats(); s.State != StateOnline || s.Connects != 1 || s.OnlineSince.IsZero() {
		t.Fatalf("stats after connect: %+v", s)
	}
	for _, q := range []QoS{QoS0, QoS1} {
		res, err := c.Publish(ctxT(t), "up/x", []byte("hello"+strconv.Itoa(int(q))), q)
		if err != nil || res != Sent {
			t.Fatalf("publish QoS%d: %v %v", q, res, err)
		}
	}
	if v := receiveN(t, got, 2); v[0] != "hello0" || v[1] != "hello1" {
		t.Fatalf("broker received %v", v)
	}
	if err := b.srv.Publish("down/a", []byte("cmd"), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-recv:
		if m.Topic != "down/a" || string(m.Payload) != "cmd" {
			t.Fatalf("handler got %+v", m)
		}
	case <-time.After(waitFor):
		t.Fatal("handler never called")
	}
	if err := c.Unsubscribe(ctxT(t), "down/+"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctxT(t), "up/+", nil, QoS0); !errors.Is(err, ErrConfig) {
		t.Fatalf("wildcard publish topic: %v", err)
	}
	if _, err := c.Publish(ctxT(t), "up/x", nil, 2); !errors.Is(err, ErrConfig) {
		t.Fatalf("QoS 2: %v", err)
	}

	closeClient(t, c)
	if _, err := c.Publish(ctxT(t), "up/x", nil, QoS0); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close: %v", err)
	}
	if err := c.Connect(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("connect after close: %v", err)
	}
	if c.State() != StateClosed {
		t.Fatalf("state after close: %v", c.State())
	}
	for range c.Events() { // closed after Close: this loop ends
	}
}

// The v1 SDK's offline-queue scenario: 3 online, 15 offline into a 10-slot
// queue, 3 online.
func TestOfflineQueue(t *testing.T) {
	tests := []struct {
		drop        DropPolicy
		wantOffline []int // offline message numbers that must arrive
	}{
		{DropNewest, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{DropOldest, []int{6, 7, 8, 9, 10, 11, 12, 13, 14, 15}},
	}
	for _, tc := range tests {
		t.Run("drop-"+tc.drop.String(), func(t *testing.T) {
			got := make(chan string, 64)
			b := startBroker(t, nil, nil)
			b.collect("seq", got)
			c := newClient(t, Config{Endpoint: b.addr, Transport: TransportTCP, Queue: QueueConfig{Size: 10, Drop: tc.drop}})
			connect(t, c)
			waitEvent(t, c, EventOnline)

			pub := func(s string) (PublishResult, error) { return c.Publish(ctxT(t), "seq", []byte(s), QoS1) }
			for i := 1; i <= 3; i++ {
				if res, err := pub(fmt.Sprintf("on-a%d", i)); err != nil || res != Sent {
					t.Fatalf("online publish: %v %v", res, err)
				}
			}
			receiveN(t, got, 3)

			b.stop()
			waitEvent(t, c, EventOffline)
			var full int
			for i := 1; i <= 15; i++ {
				res, err := pub(fmt.Sprintf("off%d", i))
				switch {
				case errors.Is(err, ErrQueueFull) && tc.drop == DropNewest:
					full++
				case err != nil || res != Queued:
					t.Fatalf("offline publish %d: %v %v", i, res, err)
				}
			}
			s := c.Stats()
			if s.Queued != 10 || s.Dropped != 5 || (tc.drop == DropNewest && full != 5) {
				t.Fatalf("after offline publishes: queued %d dropped %d full-errors %d", s.Queued, s.Dropped, full)
			}

			b2 := restartBroker(t, b.addr, nil)
			b2.collect("seq", got)
			waitEvent(t, c, EventOnline)
			waitEvent(t, c, EventQueueDrained)
			for i := 1; i <= 3; i++ {
				if res, err := pub(fmt.Sprintf("on-b%d", i)); err != nil || res != Sent {
					t.Fatalf("online publish after reconnect: %v %v", res, err)
				}
			}
			var want []string
			for _, n := range tc.wantOffline {
				want = append(want, fmt.Sprintf("off%d", n))
			}
			want = append(want, "on-b1", "on-b2", "on-b3")
			if v := receiveN(t, got, 13); strings.Join(v, ",") != strings.Join(want, ",") {
				t.Fatalf("after reconnect received\n %v\nwant\n %v", v, want)
			}
			expectQuiet(t, got)
			if s := c.Stats(); s.Connects != 2 || s.Drops != 1 || s.Drained != 10 || s.Queued != 0 {
				t.Fatalf("final stats %+v", s)
			}
		})
	}
}

func TestQueueDisabledAndWithoutQueue(t *testing.T) {
	c := newClient(t, Config{Endpoint: "127.0.0.1:1", Transport: TransportTCP, Queue: QueueConfig{Disabled: true}})
	_, err := c.Publish(ctxT(t), "t", nil, QoS0)
	if !errors.Is(err, ErrQueueDisabled) || !errors.Is(err, ErrNotConnected) {
		t.Fatalf("queue disabled: %v", err)
	}
	c2 := newClient(t, Config{Endpoint: "127.0.0.1:1", Transport: TransportTCP})
	if _, err := c2.Publish(ctxT(t), "t", nil, QoS0, WithoutQueue()); !errors.Is(err, ErrNotConnected) || errors.Is(err, ErrQueueDisabled) {
		t.Fatalf("WithoutQueue offline: %v", err)
	}
	if c2.Stats().Queued != 0 {
		t.Fatal("WithoutQueue message was queued")
	}
	// Publishing before the first connect queues (never lost, never hangs).
	if res, err := c2.Publish(ctxT(t), "t", []byte("x"), QoS1); err != nil || res != Queued {
		t.Fatalf("publish before connect: %v %v", res, err)
	}
}

func TestDiskQueueSurvivesRestart(t *testing.T) {
	b := startBroker(t, nil, nil)
	got := make(chan string, 16)
	b.collect("persist", got)
	path := filepath.Join(t.TempDir(), "queue.db")
	cfg := Config{Endpoint: b.addr, Transport: TransportTCP, Queue: QueueConfig{Size: 10, Path: path}}

	first := newClient(t, cfg) // never connected: everything is queued on disk
	for i := 1; i <= 5; i++ {
		if res, err := first.Publish(ctxT(t), "persist", []byte(fmt.Sprint(i)), QoS1); err != nil || res != Queued {
			t.Fatalf("queue %d: %v %v", i, res, err)
		}
	}
	closeClient(t, first)

	second := newClient(t, cfg)
	if q := second.Stats().Queued; q != 5 {
		t.Fatalf("reopened queue holds %d messages, want 5", q)
	}
	connect(t, second)
	if v := receiveN(t, got, 5); strings.Join(v, ",") != "1,2,3,4,5" {
		t.Fatalf("drained %v", v)
	}
	waitEvent(t, second, EventQueueDrained)
	closeClient(t, second)

	third := newClient(t, cfg)
	if q := third.Stats().Queued; q != 0 {
		t.Fatalf("drained messages came back after restart: %d", q)
	}
	// A second client on the same file is refused with a clear error.
	if _, err := New(Config{Endpoint: b.addr, Transport: TransportTCP, ClientID: "x", Queue: QueueConfig{Path: path}}); !errors.Is(err, ErrQueueStorage) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second opener: %v", err)
	}
}

// The broker is stopped and a new one started on the same port during a
// stream: the client reconnects by itself, resubscribes, and everything it
// accepted (sent or queued) arrives.
func TestBrokerRestartDuringStream(t *testing.T) {
	b := startBroker(t, nil, nil)
	got := make(chan string, 512)
	b.collect("stream", got)
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportTCP, Queue: QueueConfig{Size: 500}})
	cmds := make(chan string, 16)
	if err := c.Subscribe(ctxT(t), "cmd/#", QoS1, func(m Message) { cmds <- string(m.Payload) }); err != nil {
		t.Fatal(err)
	}
	connect(t, c)
	waitEvent(t, c, EventOnline)

	// The publisher streams QoS 1 messages; halfway it pauses until the
	// broker is down, publishes ten more while nothing can reach the broker
	// (these must be queued), then carries on while the broker restarts.
	const total = 200
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted = map[string]bool{}
	)
	half, resume, queuedSome := make(chan struct{}), make(chan struct{}), make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i++ {
			switch i {
			case total / 2:
				close(half)
				<-resume
			case total/2 + 10:
				close(queuedSome)
			}
			p := strconv.Itoa(i)
			if _, err := c.Publish(ctxT(t), "stream", []byte(p), QoS1); err == nil {
				mu.Lock()
				accepted[p] = true
				mu.Unlock()
			}
		}
	}()
	<-half
	b.stop()
	waitEvent(t, c, EventOffline)
	close(resume)
	<-queuedSome
	if s := c.Stats(); s.QueuedTotal < 10 {
		t.Fatalf("publishes while the broker was down were not queued: %+v", s)
	}
	b2 := restartBroker(t, b.addr, nil)
	b2.collect("stream", got)
	waitEvent(t, c, EventOnline)
	wg.Wait()

	// Resubscribed: a command published on the new broker reaches us.
	if err := b2.srv.Publish("cmd/reboot", []byte("now"), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-cmds:
		if v != "now" {
			t.Fatalf("command %q", v)
		}
	case <-time.After(waitFor):
		t.Fatal("subscription not restored after broker restart")
	}

	mu.Lock()
	want := len(accepted)
	mu.Unlock()
	if want < total/2 {
		t.Fatalf("only %d of %d publishes accepted", want, total)
	}
	seen := map[string]bool{}
	deadline := time.After(waitFor)
	for missing := want; missing > 0; {
		select {
		case v := <-got:
			if accepted[v] && !seen[v] {
				seen[v] = true
				missing--
			}
		case <-deadline:
			t.Fatalf("%d accepted messages never arrived (stats %+v)", missing, c.Stats())
		}
	}
	if s := c.Stats(); s.Connects < 2 || s.Drops < 1 || s.Drained < 10 {
		t.Fatalf("stats %+v", s)
	}
}

// Subscriptions are made again after every reconnect, also when the
// broker kept the session (session present) and when it did not.
func TestResubscribeWhateverTheSession(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			hook := &connectHook{}
			b := startBroker(t, nil, hook)
			c := newClient(t, Config{Endpoint: b.addr, Transport: TransportTCP, PersistentSession: persistent})
			recv := make(chan string, 4)
			if err := c.Subscribe(ctxT(t), "cmd", QoS1, func(m Message) { recv <- string(m.Payload) }); err != nil {
				t.Fatal(err)
			}
			connect(t, c)
			if ev := waitEvent(t, c, EventOnline); ev.SessionPresent {
				t.Fatal("first connect reports a session present")
			}
			cl, ok := b.srv.Clients.Get("device-1")
			if !ok {
				t.Fatal("client not known to the broker")
			}
			cl.Stop(errors.New("test drops the connection"))
			waitEvent(t, c, EventOffline)
			if ev := waitEvent(t, c, EventOnline); ev.SessionPresent != persistent {
				t.Fatalf("session present %v after reconnect, want %v", ev.SessionPresent, persistent)
			}
			if n := hook.subscribes(); n != 2 {
				t.Fatalf("broker saw %d SUBSCRIBEs, want 2 (one per connection)", n)
			}
			b.srv.Publish("cmd", []byte("after reconnect"), false, 1)
			if v := receiveN(t, recv, 1); v[0] != "after reconnect" {
				t.Fatalf("got %v", v)
			}
			hook.mu.Lock()
			defer hook.mu.Unlock()
			for _, pk := range hook.connects {
				if pk.Connect.Clean == persistent {
					t.Fatalf("CONNECT clean=%v with PersistentSession=%v", pk.Connect.Clean, persistent)
				}
			}
		})
	}
}

// The very first connect fails (no broker yet); the client keeps trying and
// comes online when the broker appears.
func TestFirstConnectFailsThenRecovers(t *testing.T) {
	b := startBroker(t, nil, nil)
	addr := b.addr
	b.stop()
	c := newClient(t, Config{Endpoint: addr, Transport: TransportTCP, ConnectTimeout: 200 * time.Millisecond})
	err := c.Connect(ctxT(t))
	if !errors.Is(err, ErrConnectTimeout) || !strings.Contains(err.Error(), "local development only") {
		t.Fatalf("connect with no broker: %v", err)
	}
	if s := c.Stats(); s.ConnectFailures == 0 || s.LastError == nil {
		t.Fatalf("stats %+v", s)
	}
	restartBroker(t, addr, nil)
	waitEvent(t, c, EventOnline)
}

func TestSubscribeRejected(t *testing.T) {
	hook := &connectHook{deny: "forbidden/#"}
	b := startBroker(t, nil, hook)
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportTCP})
	connect(t, c)
	h := func(Message) {}
	err := c.SubscribeMany(ctxT(t), []Subscription{{Filter: "ok/#", Handler: h}, {Filter: "forbidden/#", Handler: h}})
	var rej *SubscribeRejectedError
	if !errors.Is(err, ErrSubscribeRejected) || !errors.As(err, &rej) || len(rej.Filters) != 1 || rej.Filters[0] != "forbidden/#" {
		t.Fatalf("want forbidden/# rejected, got %v", err)
	}
	if !strings.Contains(err.Error(), "0x80") {
		t.Fatalf("message does not name SUBACK 0x80: %v", err)
	}
}

func TestConnectOptionsReachBroker(t *testing.T) {
	hook := &connectHook{}
	b := startBroker(t, nil, hook)
	c := newClient(t, Config{
		Endpoint: b.addr, Transport: TransportTCP, ClientID: "thing-42",
		Username: "user?SDK=pinshadow", Password: "pw", KeepAlive: 45 * time.Second,
		Will: &Will{Topic: "status/thing-42", Payload: []byte("offline"), QoS: QoS1, Retain: true},
	})
	connect(t, c)
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.connects) != 1 {
		t.Fatalf("%d CONNECTs", len(hook.connects))
	}
	pk := hook.connects[0].Connect
	if hook.connects[0].ProtocolVersion != 4 || string(pk.ClientIdentifier) != "thing-42" || string(pk.Username) != "user?SDK=pinshadow" ||
		string(pk.Password) != "pw" || pk.Keepalive != 45 || !pk.Clean || !pk.WillFlag || pk.WillTopic != "status/thing-42" ||
		string(pk.WillPayload) != "offline" || pk.WillQos != 1 || !pk.WillRetain {
		t.Fatalf("CONNECT %+v", pk)
	}
}

func TestEventsNeverBlock(t *testing.T) {
	c := newClient(t, Config{Endpoint: "127.0.0.1:1", Transport: TransportTCP, EventBuffer: 2})
	for i := 0; i < 5; i++ {
		c.emit(Event{Type: EventConnectFailed, RetryIn: time.Duration(i)})
	}
	if s := c.Stats(); s.EventsDropped != 3 {
		t.Fatalf("dropped %d events, want 3", s.EventsDropped)
	}
	if a, b := <-c.Events(), <-c.Events(); a.RetryIn != 3 || b.RetryIn != 4 {
		t.Fatalf("kept %v %v, want the newest two", a.RetryIn, b.RetryIn)
	}

	// A second consumer gets its own copy; stopping it closes only it.
	w, stop := c.Watch(4)
	c.emit(Event{Type: EventOnline})
	if ev := <-w; ev.Type != EventOnline {
		t.Fatalf("watcher got %v", ev.Type)
	}
	if ev := <-c.Events(); ev.Type != EventOnline {
		t.Fatalf("Events got %v", ev.Type)
	}
	stop()
	if _, ok := <-w; ok {
		t.Fatal("stopped watcher still open")
	}
	c.emit(Event{Type: EventOffline}) // must not panic on the closed watcher
	w2, _ := c.Watch(1)
	closeClient(t, c)
	if _, ok := <-w2; ok {
		t.Fatal("watcher open after Close")
	}
	if _, stop := c.Watch(1); stop == nil {
		t.Fatal("nil stop func")
	}
}

func TestSlowHandlerDoesNotStallConnection(t *testing.T) {
	b := startBroker(t, nil, nil)
	got := make(chan string, 4)
	b.collect("up", got)
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportTCP, MessageBuffer: 1})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	if err := c.Subscribe(ctxT(t), "down", QoS0, func(Message) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	connect(t, c)
	defer close(release)
	b.srv.Publish("down", []byte("1"), false, 0)
	<-entered // the handler is now stuck
	for i := 0; i < 5; i++ {
		b.srv.Publish("down", []byte("more"), false, 0)
	}
	// The connection still works: a QoS1 publish is acknowledged.
	if res, err := c.Publish(ctxT(t), "up", []byte("alive"), QoS1); err != nil || res != Sent {
		t.Fatalf("publish with stuck handler: %v %v", res, err)
	}
	receiveN(t, got, 1)
}

// The connection loop applies the backoff policy to failed attempts,
// including the very first ones, and keeps going.
func TestReconnectLoopUsesBackoff(t *testing.T) {
	b := startBroker(t, nil, nil)
	addr := b.addr
	b.stop()
	c := newClient(t, Config{Endpoint: addr, Transport: TransportTCP,
		Backoff: BackoffConfig{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond, Stable: time.Second, Jitter: JitterNone}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_ = c.Connect(ctx) // starts the loop; returns at once
	var waits []time.Duration
	for len(waits) < 5 {
		ev := waitEvent(t, c, EventConnectFailed)
		if ev.Err == nil {
			t.Fatal("connect-failed event without error")
		}
		waits = append(waits, ev.RetryIn)
	}
	want := []time.Duration{5, 10, 20, 20, 20}
	for i := range want {
		if waits[i] != want[i]*time.Millisecond {
			t.Fatalf("retry waits %v, want %v ms", waits, want)
		}
	}
}

func TestConnectRefusedReturnsAtOnce(t *testing.T) {
	b := startBroker(t, nil, &connectHook{refuse: true})
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportTCP, Username: "u", Password: "wrong"})
	start := time.Now()
	err := c.Connect(ctxT(t))
	var refused *ConnectRefusedError
	if !errors.Is(err, ErrConnectRefused) || !errors.As(err, &refused) || (refused.Code != 4 && refused.Code != 5) {
		t.Fatalf("want CONNACK refusal, got %v", err)
	}
	if time.Since(start) > waitFor/2 {
		t.Fatalf("Connect took %v to report a refusal", time.Since(start))
	}
	t.Logf("error: %v", err)
}

// Handlers run on the client's dispatcher, not paho's router, so they can
// publish and wait for the PUBACK (this deadlocks in the v1 SDK).
func TestHandlerMayPublishAndWait(t *testing.T) {
	b := startBroker(t, nil, nil)
	got := make(chan string, 1)
	b.collect("pong", got)
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportTCP})
	results := make(chan error, 1)
	if err := c.Subscribe(ctxT(t), "ping", QoS1, func(m Message) {
		_, err := c.Publish(context.Background(), "pong", m.Payload, QoS1)
		results <- err
	}); err != nil {
		t.Fatal(err)
	}
	connect(t, c)
	b.srv.Publish("ping", []byte("42"), false, 1)
	select {
	case err := <-results:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("publish from a handler never returned")
	}
	if v := receiveN(t, got, 1); v[0] != "42" {
		t.Fatalf("pong %v", v)
	}
}

// Nothing blocks forever: a missing PUBACK ends in ErrOperationTimeout, a
// cancelled context ends the wait at once, and the connection stays up.
func TestOperationTimeoutAndContext(t *testing.T) {
	b := startBroker(t, nil, &connectHook{blackhole: "void"})
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportTCP, OperationTimeout: 100 * time.Millisecond})
	connect(t, c)
	_, err := c.Publish(ctxT(t), "void", []byte("x"), QoS1)
	if !errors.Is(err, ErrOperationTimeout) || !strings.Contains(err.Error(), "no PUBACK within 100ms") {
		t.Fatalf("want operation timeout, got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Publish(ctx, "void", []byte("x"), QoS1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	if c.State() != StateOnline {
		t.Fatalf("state %v after timeouts", c.State())
	}
	if res, err := c.Publish(ctxT(t), "fine", nil, QoS1); err != nil || res != Sent {
		t.Fatalf("normal publish after timeouts: %v %v", res, err)
	}
}

// silentServer accepts TCP connections and never answers (no CONNACK).
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acc := make(chan struct{}, 16)
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
			select {
			case acc <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), acc
}

func TestSilentBrokerConnectTimeout(t *testing.T) {
	addr, _ := silentServer(t)
	c := newClient(t, Config{Endpoint: addr, Transport: TransportTCP, ConnectTimeout: 150 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	err := c.Connect(ctx)
	if !errors.Is(err, ErrConnectTimeout) {
		t.Fatalf("silent broker: %v", err)
	}
	ev := waitEvent(t, c, EventConnectFailed)
	if !errors.Is(ev.Err, ErrConnectTimeout) || !strings.Contains(ev.Err.Error(), "no CONNACK") {
		t.Fatalf("attempt error %v", ev.Err)
	}
}

// Close abandons a connection attempt at once instead of waiting for the
// connect timeout.
func TestCloseAbortsAttempt(t *testing.T) {
	addr, accepted := silentServer(t)
	c, err := New(Config{Endpoint: addr, Transport: TransportTCP, ClientID: "d", ConnectTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = c.Connect(ctx) // starts the loop
	select {
	case <-accepted:
	case <-time.After(waitFor):
		t.Fatal("no connection attempt")
	}
	start := time.Now()
	closeCtx, cancelClose := context.WithTimeout(context.Background(), waitFor)
	defer cancelClose()
	if err := c.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > waitFor/2 {
		t.Fatalf("Close took %v during a connect attempt", d)
	}
}
