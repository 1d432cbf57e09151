package localcloud

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/localcloud/shadow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitFor = 10 * time.Second

// testLogger sends server logs to the test log (warnings and errors only,
// unless -v with LOCALCLOUD_DEBUG set).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testOptions is an in-memory server on a free loopback port with the
// limits off (tests that exercise limits turn them on).
func testOptions(t testing.TB) Options {
	o := DefaultOptions()
	o.Listen = "127.0.0.1:0"
	o.RatePerThing = 0
	o.MaxInFlight = 0
	o.Logger = testLogger(t)
	return o
}

func startServer(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func endpoint(t testing.TB, s *Server, name string) string {
	t.Helper()
	for _, ep := range s.Endpoints() {
		if ep.Name == name {
			return ep.Addr.String()
		}
	}
	t.Fatalf("server has no %s endpoint: %v", name, s.Endpoints())
	return ""
}

// msg is one received publish.
type msg struct {
	topic string
	body  []byte
}

func (m msg) doc(t testing.TB) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(m.body, &d); err != nil {
		t.Fatalf("%s: payload %q: %v", m.topic, m.body, err)
	}
	return d
}

// client is a paho MQTT client that records every message it receives.
type client struct {
	t    testing.TB
	c    paho.Client
	msgs chan msg
}

var clientSeq atomic.Int64

func connect(t testing.TB, broker string, tlsCfg *tls.Config) *client {
	t.Helper()
	c, err := dial(broker, tlsCfg)
	if err != nil {
		t.Fatalf("connect %s: %v", broker, err)
	}
	c.t = t
	t.Cleanup(func() { c.c.Disconnect(100) })
	return c
}

func dial(broker string, tlsCfg *tls.Config) (*client, error) {
	c := &client{msgs: make(chan msg, 8192)}
	o := paho.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("test-%d", clientSeq.Add(1))).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetOrderMatters(true).SetTLSConfig(tlsCfg).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			c.msgs <- msg{m.Topic(), append([]byte(nil), m.Payload()...)}
		})
	c.c = paho.NewClient(o)
	tok := c.c.Connect()
	if !tok.WaitTimeout(waitFor) {
		c.c.Disconnect(0)
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *client) subscribe(filters ...string) {
	c.t.Helper()
	for _, f := range filters {
		tok := c.c.Subscribe(f, 1, nil)
		if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
			c.t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
}

func (c *client) publish(topic, payload string) {
	c.t.Helper()
	tok := c.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		c.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// next returns the next message received, failing after waitFor.
func (c *client) next() msg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitFor):
		c.t.Fatalf("no message within %v", waitFor)
		return msg{}
	}
}

// expect returns the next message and checks its topic.
func (c *client) expect(topic string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m.topic != topic {
		c.t.Fatalf("got message on %s (%s), want %s", m.topic, m.body, topic)
	}
	return m.doc(c.t)
}

// path digs into a decoded JSON document.
func path(d any, keys ...string) any {
	for _, k := range keys {
		m, ok := d.(map[string]any)
		if !ok {
			return nil
		}
		d = m[k]
	}
	return d
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

type (
	shadowKey = shadow.Key
	shadowOp  = shadow.Op
)

func waitChan[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("event did not happen within %v", waitFor)
		var zero T
		return zero
	}
}
