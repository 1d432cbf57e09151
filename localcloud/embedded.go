package localcloud

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/pinshadow/pinshadow/localcloud/jobs"
	"github.com/pinshadow/pinshadow/localcloud/shadow"
)

// ALPNProtocol is the TLS application protocol AWS IoT clients offer for
// MQTT with X.509 client certificates (port 443); the TLS listener accepts
// it, and plain "mqtt".
const ALPNProtocol = "x-amzn-mqtt-ca"

// Endpoint is one address the server listens on.
type Endpoint struct {
	// Name is "mqtt" (plain TCP), "mqtts" (mutual TLS) or "ws" (WebSocket).
	Name string
	Addr net.Addr
}

// embedded is the in-process mochi-mqtt broker.
type embedded struct {
	srv       *mqtt.Server
	endpoints []Endpoint
	closers   []func() // listeners bound but not yet owned by mochi
	// listenerIDs are the mochi listener ids and tracked the raw
	// listeners under them, for shutdown (shutdown.go).
	listenerIDs []string
	tracked     []*trackingListener
}

// newEmbedded binds the listeners. Nothing runs until serve.
func newEmbedded(o *Options) (_ *embedded, err error) {
	e := &embedded{}
	defer func() {
		if err != nil {
			for _, c := range e.closers {
				c()
			}
		}
	}()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1
	caps.MaximumPacketSize = MaxPacketSize
	e.srv = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		Logger:       slog.New(quietHandler{o.Logger.Handler().WithAttrs([]slog.Attr{slog.String("component", "broker")})}),
	})
	if err := e.srv.AddHook(&shadowACL{open: o.OpenResponseTopics}, nil); err != nil {
		return nil, fmt.Errorf("broker auth hook: %w", err)
	}
	if o.Listen != "" {
		raw, err := net.Listen("tcp", o.Listen)
		if err != nil {
			return nil, fmt.Errorf("mqtt listener: %w", err)
		}
		ln := e.track(raw)
		e.closers = append(e.closers, func() { ln.Close() })
		e.listenerIDs = append(e.listenerIDs, "mqtt")
		if err := e.srv.AddListener(listeners.NewNet("mqtt", ln)); err != nil {
			return nil, fmt.Errorf("mqtt listener %s: %w", ln.Addr(), err)
		}
		e.endpoints = append(e.endpoints, Endpoint{Name: "mqtt", Addr: ln.Addr()})
	}
	if o.TLSListen != "" {
		cfg, err := serverTLSConfig(o.TLSCertFile, o.TLSKeyFile, o.ClientCAFile)
		if err != nil {
			return nil, err
		}
		raw, err := net.Listen("tcp", o.TLSListen)
		if err != nil {
			return nil, fmt.Errorf("mqtts listener: %w", err)
		}
		ln := e.track(raw)
		e.closers = append(e.closers, func() { ln.Close() })
		e.listenerIDs = append(e.listenerIDs, "mqtts")
		if err := e.srv.AddListener(listeners.NewNet("mqtts", tls.NewListener(ln, cfg))); err != nil {
			return nil, fmt.Errorf("mqtts listener %s: %w", ln.Addr(), err)
		}
		e.endpoints = append(e.endpoints, Endpoint{Name: "mqtts", Addr: ln.Addr()})
	}
	if o.WSListen != "" {
		raw, err := net.Listen("tcp", o.WSListen)
		if err != nil {
			return nil, fmt.Errorf("ws listener: %w", err)
		}
		ln := e.track(raw)
		e.closers = append(e.closers, func() { ln.Close() })
		ws := newWSListener("ws", ln)
		e.listenerIDs = append(e.listenerIDs, "ws")
		if err := e.srv.AddListener(ws); err != nil {
			return nil, fmt.Errorf("ws listener %s: %w", ln.Addr(), err)
		}
		e.endpoints = append(e.endpoints, Endpoint{Name: "ws", Addr: ln.Addr()})
	}
	return e, nil
}

// track wraps a raw listener so shutdown can wait for its accepted
// connections to reach mochi.
func (e *embedded) track(ln net.Listener) net.Listener {
	tl := newTrackingListener(ln)
	e.tracked = append(e.tracked, tl)
	return tl
}

// serverTLSConfig is mutual TLS as AWS IoT does it: TLS ≥ 1.2 and a client
// certificate chaining to the client CA is required.
func serverTLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS server certificate %s / key %s: %w", certFile, keyFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("client CA %s: no PEM certificate found", caFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{ALPNProtocol, "mqtt"},
	}, nil
}

// serve attaches the shadow service and starts the broker.
func (e *embedded) serve(svc *service) error {
	handler := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		// Copy: the packet is shared with every other subscriber.
		svc.submit(pk.TopicName, append([]byte(nil), pk.Payload...), pk.Origin)
	}
	for i, f := range append(shadow.RequestFilters(), jobs.RequestFilters()...) {
		if err := e.srv.Subscribe(f, i+1, handler); err != nil {
			return fmt.Errorf("subscribe shadow service to %s: %w", f, err)
		}
	}
	e.closers = nil // mochi owns the listeners now
	if err := e.srv.Serve(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	return nil
}

// publish sends a response through the inline client. Mochi delivers it at
// min(1, subscription QoS).
func (e *embedded) publish(_ context.Context, topic string, payload []byte) error {
	return e.srv.Publish(topic, payload, false, 1)
}

// close stops listeners and disconnects every client.
func (e *embedded) close() {
	for _, c := range e.closers {
		c()
	}
	if e.closers == nil {
		e.shutdown()
	}
}

// quietHandler demotes mochi's chatty Info logs (hooks added, listeners
// attached, start/stop banners) and its per-connection end-of-client
// warnings (logged with an empty message: EOF, failed TLS handshakes) to
// Debug; other warnings and errors pass.
type quietHandler struct{ h slog.Handler }

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	// Warnings may be demoted in Handle; let them through to decide there.
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return q.h.Enabled(ctx, l) || l == slog.LevelWarn
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo || (r.Level == slog.LevelWarn && r.Message == "") {
		r.Level = slog.LevelDebug
		r.Message = "client connection ended"
	}
	if !q.h.Enabled(ctx, r.Level) {
		return nil
	}
	return q.h.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler { return quietHandler{q.h.WithAttrs(as)} }
func (q quietHandler) WithGroup(n string) slog.Handler       { return quietHandler{q.h.WithGroup(n)} }

// shadowACL lets every client connect and use every topic, except publish
// on the shadow response topics unless open: only the shadow service (the
// broker's inline client, which mochi does not check) answers there.
type shadowACL struct {
	auth.AllowHook
	open bool
}

// ID names the hook in mochi's logs.
func (h *shadowACL) ID() string { return "shadow-acl" }

// OnACLCheck refuses a client's publish on a response topic.
func (h *shadowACL) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return h.open || !write || !isResponseTopic(topic)
}

// isResponseTopic reports whether topic is one the shadow service
// publishes on: a request topic followed by /accepted or /rejected, or
// update's /delta and /documents.
func isResponseTopic(topic string) bool {
	i := strings.LastIndexByte(topic, '/')
	if i < 0 {
		return false
	}
	_, op, ok := shadow.ParseTopic(topic[:i])
	if !ok {
		return false
	}
	switch topic[i+1:] {
	case "accepted", "rejected":
		return true
	case "delta", "documents":
		return op == shadow.OpUpdate
	}
	return false
}
