package iot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/pinshadow/pinshadow/iot/sigv4"
)

// rotatingCreds hands out new credentials on every call, as an STS-backed
// provider would, and counts calls.
type rotatingCreds struct {
	mu sync.Mutex
	n  int
}

func (r *rotatingCreds) Retrieve(context.Context) (sigv4.Credentials, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	return sigv4.Credentials{AccessKeyID: fmt.Sprintf("AKID%d", r.n), SecretAccessKey: fmt.Sprintf("secret%d", r.n), SessionToken: fmt.Sprintf("token/%d+=", r.n)}, nil
}

func nextRequest(t *testing.T, l *wsListener) wsRequest {
	t.Helper()
	select {
	case r := <-l.reqs:
		return r
	case <-time.After(waitFor):
		t.Fatal("no WebSocket upgrade request reached the broker")
		return wsRequest{}
	}
}

// checkPresigned verifies the URL the server saw carries a valid SigV4
// presignature for key n, with the session token appended unsigned.
func checkPresigned(t *testing.T, r wsRequest, n int) {
	t.Helper()
	q := r.URL.Query()
	if r.URL.Path != "/mqtt" {
		t.Errorf("path %q, want /mqtt", r.URL.Path)
	}
	wantScope := fmt.Sprintf("AKID%d/", n)
	if cred := q.Get("X-Amz-Credential"); !strings.HasPrefix(cred, wantScope) || !strings.HasSuffix(cred, "/us-east-1/iotdevicegateway/aws4_request") {
		t.Errorf("credential scope %q, want AKID%d/<date>/us-east-1/iotdevicegateway/aws4_request", cred, n)
	}
	wantToken := fmt.Sprintf("token/%d+=", n)
	if q.Get("X-Amz-Security-Token") != wantToken || !strings.HasSuffix(r.URL.RawQuery, "&X-Amz-Security-Token="+sigv4.Escape(wantToken)) {
		t.Errorf("session token not appended last: %s", r.URL.RawQuery)
	}
	at, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		t.Fatal(err)
	}
	// Re-sign what the server saw; the signature must match.
	want, err := sigv4.IoTWebSocketURL("ws", r.Host, "us-east-1", sigv4.Credentials{AccessKeyID: fmt.Sprintf("AKID%d", n), SecretAccessKey: fmt.Sprintf("secret%d", n)}, at, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Get("X-Amz-Signature"); got != want.Query().Get("X-Amz-Signature") {
		t.Errorf("signature %s does not verify for host %s", got, r.Host)
	}
}

func TestWebSocketPresignedAtEveryConnect(t *testing.T) {
	wsl := newWSListener(t, nil)
	b := startBrokerListener(t, wsl, nil)
	got := make(chan string, 4)
	b.collect("ws/up", got)
	creds := &rotatingCreds{}
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportWS, Region: "us-east-1", Credentials: creds})
	connect(t, c)
	waitEvent(t, c, EventOnline)
	first := nextRequest(t, wsl)
	checkPresigned(t, first, 1)

	wsl.dropAll()
	waitEvent(t, c, EventOffline)
	waitEvent(t, c, EventOnline)
	second := nextRequest(t, wsl)
	checkPresigned(t, second, 2)
	if first.URL.Query().Get("X-Amz-Signature") == second.URL.Query().Get("X-Amz-Signature") {
		t.Fatal("reconnect reused the first signature")
	}
	if _, err := c.Publish(ctxT(t), "ws/up", []byte("over websocket"), QoS1); err != nil {
		t.Fatal(err)
	}
	receiveN(t, got, 1)
}

func TestWebSocketWithoutCredentials(t *testing.T) {
	wsl := newWSListener(t, nil)
	b := startBrokerListener(t, wsl, nil)
	empty := func(string) string { return "" }
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportWS, Region: "us-east-1", Getenv: empty,
		Credentials: sigv4.Chain{sigv4.Env{Getenv: empty}, sigv4.SharedFile{Path: t.TempDir() + "/none", Getenv: empty}}})
	err := c.Connect(ctxT(t))
	if !errors.Is(err, ErrCredentials) || !errors.Is(err, sigv4.ErrNoCredentials) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("want a credentials error naming AWS_ACCESS_KEY_ID, got %v", err)
	}
}

func TestWebSocketRegion(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	creds := sigv4.Static{AccessKeyID: "a", SecretAccessKey: "b"}
	tests := []struct {
		endpoint, region string
		getenv           map[string]string
		want             string
	}{
		{"abc-ats.iot.eu-west-1.amazonaws.com", "", nil, "eu-west-1"},
		{"abc-ats.iot.eu-west-1.amazonaws.com", "", map[string]string{"AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2"},
		{"abc-ats.iot.eu-west-1.amazonaws.com", "", map[string]string{"AWS_REGION": "ap-south-1", "AWS_DEFAULT_REGION": "us-west-2"}, "ap-south-1"},
		{"custom.example.com", "sa-east-1", map[string]string{"AWS_REGION": "ap-south-1"}, "sa-east-1"},
	}
	for _, tc := range tests {
		c, err := New(Config{Endpoint: tc.endpoint, Transport: TransportWSS, ClientID: "d", Region: tc.region, Getenv: env(tc.getenv), Credentials: creds})
		if err != nil {
			t.Fatal(err)
		}
		if c.region != tc.want {
			t.Errorf("%s %v: region %q, want %q", tc.endpoint, tc.getenv, c.region, tc.want)
		}
		closeClient(t, c)
	}
	if _, err := New(Config{Endpoint: "custom.example.com", Transport: TransportWSS, ClientID: "d", Getenv: env(nil), Credentials: creds}); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Fatalf("no region anywhere: %v", err)
	}
}

// wss with TLS: the client's wss TLS config carries no ALPN, which
// gorilla/websocket would refuse, and verifies the broker certificate.
func TestWebSocketOverTLS(t *testing.T) {
	p := newPKI(t)
	cert, err := tls.X509KeyPair(p.server.CertPEM, p.server.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	wsl := newWSListener(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	b := startBrokerListener(t, wsl, nil)
	got := make(chan string, 1)
	b.collect("wss/up", got)
	c := newClient(t, Config{Endpoint: b.addr, Transport: TransportWSS, Region: "us-east-1", CAFile: p.caFile, Credentials: &rotatingCreds{}})
	connect(t, c)
	r := nextRequest(t, wsl)
	if r.URL.Query().Get("X-Amz-Signature") == "" {
		t.Fatalf("no signature in %s", r.URL)
	}
	if _, err := c.Publish(ctxT(t), "wss/up", []byte("secure"), QoS1); err != nil {
		t.Fatal(err)
	}
	receiveN(t, got, 1)

	// A wss client that does not trust the broker's CA is refused clearly.
	other, err := New(Config{Endpoint: b.addr, Transport: TransportWSS, ClientID: "d2", Region: "us-east-1", Credentials: &rotatingCreds{}, Backoff: fastBackoff})
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(t, other)
	if err := other.Connect(ctxT(t)); !errors.Is(err, ErrTLS) {
		t.Fatalf("untrusted wss broker: %v", err)
	}
}

// Compatibility with mochi's own WebSocket listener (the one `agent cloud`
// would use). It needs a fixed address, so a free port is picked first.
func TestWebSocketMochiListener(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	b := startBrokerListener(t, listeners.NewWebsocket(listeners.Config{ID: "mochi-ws", Address: addr}), nil)
	got := make(chan string, 1)
	b.collect("mochi/ws", got)
	// mochi serves asynchronously: the client's retry loop covers the gap.
	c := newClient(t, Config{Endpoint: addr, Transport: TransportWS, Region: "eu-central-1", Credentials: sigv4.Static{AccessKeyID: "AKID", SecretAccessKey: "secret"}})
	connect(t, c)
	if _, err := c.Publish(ctxT(t), "mochi/ws", []byte("hi"), QoS1); err != nil {
		t.Fatal(err)
	}
	receiveN(t, got, 1)
}
