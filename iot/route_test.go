package iot

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

// scriptRouter routes attempt by attempt as pick says, recording the
// failure counts it was asked with.
type scriptRouter struct {
	mu     sync.Mutex
	failed []int
	pick   func(failed int) (Route, error)
}

func (r *scriptRouter) Route(_ context.Context, failed int) (Route, error) {
	r.mu.Lock()
	r.failed = append(r.failed, failed)
	r.mu.Unlock()
	return r.pick(failed)
}

func (r *scriptRouter) asked() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.failed...)
}

// A routed client moves to another broker, with that broker's CA, server
// name and ALPN, when its broker goes away; its subscribers and queue do
// not notice, and the failure count tells the router what happened.
func TestRouterMovesTheClient(t *testing.T) {
	p := newPKI(t)
	// The second broker is a Greengrass core: its certificate comes from a
	// group CA the device's configured CA file does not hold.
	groupCA, err := devcerts.NewCA("group CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	coreCert, err := devcerts.Issue(groupCA, devcerts.IssueOptions{CommonName: "core", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	// Mutual TLS on the core too: it trusts the device's CA.
	a, _ := startTLSBroker(t, p.server, p.ca, false)
	b, bl := startTLSBroker(t, coreCert, p.ca, true)
	groupPool := x509.NewCertPool()
	groupPool.AddCert(groupCA.Cert)

	rt := &scriptRouter{pick: func(failed int) (Route, error) {
		if failed == 0 {
			return Route{Endpoint: a.addr, Name: "broker A"}, nil
		}
		return Route{Endpoint: b.addr, Roots: groupPool, ALPN: true, Name: "core B"}, nil
	}}
	c := newClient(t, Config{Endpoint: "placeholder.invalid:8883", Transport: TransportMQTTS, CAFile: p.caFile,
		CertFile: p.certFile, KeyFile: p.keyFile, Router: rt,
		Backoff: BackoffConfig{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: JitterNone}})
	if got := c.Destination(); got != "" {
		t.Fatalf("Destination %q before any attempt, want none", got)
	}
	connect(t, c)
	if got := c.Destination(); got != "broker A" {
		t.Fatalf("Destination %q, want broker A", got)
	}

	got := make(chan string, 4)
	b.collect("moved/+", got)
	a.stop()
	// Published once the client knows (a publish in flight when the link
	// drops fails, by design); queued or sent, it must reach core B.
	waitEvent(t, c, EventOffline)
	if _, err := c.Publish(ctxT(t), "moved/1", []byte("queued while moving"), QoS1); err != nil {
		t.Fatal(err)
	}
	if v := receiveN(t, got, 1); v[0] != "queued while moving" {
		t.Fatalf("core B got %q", v)
	}
	if proto := negotiated(t, bl); proto != ALPNProtocol {
		t.Fatalf("core B negotiated %q, want the route's ALPN %q", proto, ALPNProtocol)
	}
	if got := c.Destination(); got != "core B" {
		t.Fatalf("Destination %q after the move, want core B", got)
	}
	// First attempt 0, the reconnect after the drop 0 again (the broker
	// that worked), then 1 once that failed.
	asked := rt.asked()
	if len(asked) < 3 || asked[0] != 0 || asked[1] != 0 || asked[2] != 1 {
		t.Fatalf("router asked with failure counts %v, want 0, 0, 1…", asked)
	}
}

// A router's error is the attempt's error, and the client keeps trying.
func TestRouterErrorIsAFailedAttempt(t *testing.T) {
	p := newPKI(t)
	b, _ := startTLSBroker(t, p.server, p.ca, false)
	noCore := errors.New("no core in the discovery answer")
	rt := &scriptRouter{pick: func(failed int) (Route, error) {
		if failed < 2 {
			return Route{}, noCore
		}
		return Route{Name: "home"}, nil // the configured endpoint
	}}
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportMQTTS, CAFile: p.caFile,
		CertFile: p.certFile, KeyFile: p.keyFile, Router: rt,
		Backoff: BackoffConfig{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: JitterNone}})
	ev, stop := c.Watch(16)
	defer stop()
	connect(t, c)
	var failures int
	for failures < 2 {
		select {
		case e := <-ev:
			if e.Type == EventConnectFailed {
				if !errors.Is(e.Err, noCore) || !strings.Contains(e.Err.Error(), "choosing where to connect") {
					t.Fatalf("attempt error %v, want the router's", e.Err)
				}
				failures++
			}
		case <-time.After(waitFor):
			t.Fatal("no failed attempt reported")
		}
	}
	if got := c.Destination(); got != "home" {
		t.Fatalf("Destination %q, want the configured endpoint's route name", got)
	}
}

func TestRouterNeedsMutualTLS(t *testing.T) {
	_, err := New(Config{Endpoint: "127.0.0.1:1883", Transport: TransportTCP, ClientID: "d", Router: &scriptRouter{}})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "transport" {
		t.Fatalf("New with a Router on tcp: %v, want a transport ConfigError", err)
	}
}
