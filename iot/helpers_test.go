package iot

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor is the longest any test waits for an event.
const waitFor = 10 * time.Second

// fastBackoff keeps integration tests quick.
var fastBackoff = BackoffConfig{Base: 10 * time.Millisecond, Max: 40 * time.Millisecond, Stable: time.Second, Jitter: JitterNone}

// broker is an embedded mochi broker on a loopback port.
type broker struct {
	t        *testing.T
	srv      *mochi.Server
	addr     string
	listener string // its listener's id
}

// startBroker serves MQTT on ln (nil: a new 127.0.0.1:0 TCP listener) with
// the given hook (nil: allow everything).
func startBroker(t *testing.T, ln net.Listener, hook mochi.Hook) *broker {
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	return startBrokerListener(t, listeners.NewNet("t", ln), hook)
}

// startBrokerListener serves MQTT on a mochi listener.
func startBrokerListener(t *testing.T, l listeners.Listener, hook mochi.Hook) *broker {
	t.Helper()
	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if hook == nil {
		hook = new(auth.AllowHook)
	}
	if err := srv.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, srv: srv, addr: l.Address(), listener: l.ID()}
	t.Cleanup(b.stop)
	return b
}

// restartBroker starts a new broker on the same address as old (stopped).
func restartBroker(t *testing.T, addr string, hook mochi.Hook) *broker {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return startBroker(t, ln, hook)
}

// stop stops the broker; its clients see their connection drop. mochi
// v2.7.9's Close can deadlock when a client detaches while its listener
// hook runs (the clients' read lock taken twice, a writer queued between:
// see localcloud/shutdown.go), e.g. a client closed just before by a test's
// cleanup; so the listener is closed with a hook that does nothing and the
// clients are dropped before Close.
func (b *broker) stop() {
	if b.srv == nil {
		return
	}
	b.srv.Listeners.Close(b.listener, func(string) {})
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	b.srv.Close()
	b.srv = nil
}

// collect subscribes inline to filter and sends every payload to out.
func (b *broker) collect(filter string, out chan<- string) {
	b.t.Helper()
	err := b.srv.Subscribe(filter, 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		out <- string(pk.Payload)
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// receiveN reads n values from ch or fails after waitFor.
func receiveN(t *testing.T, ch <-chan string, n int) []string {
	t.Helper()
	var got []string
	deadline := time.After(waitFor)
	for len(got) < n {
		select {
		case v := <-ch:
			got = append(got, v)
		case <-deadline:
			t.Fatalf("received %d of %d messages: %v", len(got), n, got)
		}
	}
	return got
}

// expectNone fails if ch yields anything before the client has had the
// chance to deliver more (bounded by one round trip through the broker).
func expectQuiet(t *testing.T, ch <-chan string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected extra message %q", v)
	default:
	}
}

// waitEvent reads events until one of type typ arrives.
func waitEvent(t *testing.T, c *Client, typ EventType) Event {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatalf("events closed while waiting for %v", typ)
			}
			if ev.Type == typ {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %v event within %v (state %v, last error %v)", typ, waitFor, c.State(), c.Stats().LastError)
		}
	}
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.ClientID == "" {
		cfg.ClientID = "device-1"
	}
	if cfg.Backoff == (BackoffConfig{}) {
		cfg.Backoff = fastBackoff
	}
	if cfg.Queue.DrainInterval == 0 {
		cfg.Queue.DrainInterval = time.Millisecond
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeClient(t, c) })
	return c
}

func closeClient(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

func connect(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

// connectHook records CONNECT packets and can refuse subscriptions.
type connectHook struct {
	mochi.HookBase
	deny      string // filter whose SUBSCRIBE is refused (SUBACK 0x80)
	refuse    bool   // refuse every CONNECT
	blackhole string // topic whose PUBLISHes are swallowed without PUBACK
	mu        sync.Mutex
	connects  []packets.Packet
	subs      int
}

func (h *connectHook) OnPublish(_ *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if h.blackhole != "" && pk.TopicName == h.blackhole {
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

func (h *connectHook) subscribes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subs
}

func (h *connectHook) OnSubscribe(_ *mochi.Client, pk packets.Packet) packets.Packet {
	h.mu.Lock()
	h.subs++
	h.mu.Unlock()
	return pk
}

func (h *connectHook) ID() string { return "test-hook" }
func (h *connectHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck || b == mochi.OnConnect || b == mochi.OnSubscribe || b == mochi.OnPublish
}
func (h *connectHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return !h.refuse }
func (h *connectHook) OnACLCheck(_ *mochi.Client, topic string, _ bool) bool {
	return h.deny == "" || topic != h.deny
}
func (h *connectHook) OnConnect(_ *mochi.Client, pk packets.Packet) error {
	h.mu.Lock()
	h.connects = append(h.connects, pk)
	h.mu.Unlock()
	return nil
}

// alpnListener does the TLS handshake server-side and reports each
// connection's negotiated ALPN protocol (or handshake error).
type alpnListener struct {
	net.Listener
	cfg        *tls.Config
	negotiated chan string
}

func (l *alpnListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := l.handshake(conn); ok {
			return tc, nil
		}
	}
}

// handshake completes the server handshake; failed connections are closed
// here rather than handed to mochi.
func (l *alpnListener) handshake(conn net.Conn) (net.Conn, bool) {
	tc := tls.Server(conn, l.cfg)
	_ = tc.SetDeadline(time.Now().Add(waitFor))
	if err := tc.Handshake(); err != nil {
		// With TLS 1.3 the client learns of a rejected certificate only
		// when it reads: let it read the alert before closing.
		tc.Close()
		select {
		case l.negotiated <- "handshake error: " + err.Error():
		default:
		}
		return nil, false
	}
	_ = tc.SetDeadline(time.Time{})
	select {
	case l.negotiated <- tc.ConnectionState().NegotiatedProtocol:
	default:
	}
	return tc, true
}

// wsListener is a mochi listener serving MQTT over WebSocket on a
// loopback port; it records every upgrade request's URL and can drop all
// connections to force reconnects.
type wsListener struct {
	ln    net.Listener
	srv   *http.Server
	reqs  chan wsRequest
	mu    sync.Mutex
	conns []*websocket.Conn

	establish listeners.EstablishFn
}

// newWSListener listens on 127.0.0.1:0; with tlsCfg it serves wss.
func newWSListener(t *testing.T, tlsCfg *tls.Config) *wsListener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return &wsListener{ln: ln, reqs: make(chan wsRequest, 16)}
}

// wsRequest is what the server saw of a WebSocket upgrade request.
type wsRequest struct {
	Host string
	URL  *url.URL
}

func (l *wsListener) ID() string       { return "ws" }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "ws" }

func (l *wsListener) Init(*slog.Logger) error {
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}, CheckOrigin: func(*http.Request) bool { return true }}
	l.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.reqs <- wsRequest{Host: r.Host, URL: r.URL}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		l.mu.Lock()
		l.conns = append(l.conns, ws)
		establish := l.establish
		l.mu.Unlock()
		defer ws.Close()
		_ = establish(l.ID(), &wsConn{Conn: ws.UnderlyingConn(), ws: ws})
	})}
	return nil
}

// Serve is run by mochi on its own goroutine and returns when Close
// closes the HTTP server.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	l.establish = establish
	l.mu.Unlock()
	_ = l.srv.Serve(l.ln)
}

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.srv.Close()
	closeClients(l.ID())
}

// dropAll closes every WebSocket connection (the client sees a loss).
func (l *wsListener) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// wsConn adapts a websocket to net.Conn (binary messages).
type wsConn struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }
