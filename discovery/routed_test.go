package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/localcloud"
	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

// localCore runs the local cloud with a plain, a mutual-TLS and a
// discovery listener on free loopback ports, with dir's PKI.
func localCore(t *testing.T, dir string) *localcloud.Server {
	t.Helper()
	o := localcloud.DefaultOptions()
	o.Listen = "127.0.0.1:0"
	o.TLSListen = "127.0.0.1:0"
	o.DiscoveryListen = "127.0.0.1:0"
	o.TLSCertFile = filepath.Join(dir, devcerts.ServerCertFile)
	o.TLSKeyFile = filepath.Join(dir, devcerts.ServerKeyFile)
	o.ClientCAFile = filepath.Join(dir, devcerts.CACertFile)
	o.RatePerThing, o.MaxInFlight = 0, 0
	s, err := localcloud.New(o)
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

func listenerAddr(t *testing.T, s *localcloud.Server, name string) (host string, port int) {
	t.Helper()
	for _, ep := range s.Endpoints() {
		if ep.Name == name {
			h, p, _ := net.SplitHostPort(ep.Addr.String())
			n, _ := strconv.Atoi(p)
			return h, n
		}
	}
	t.Fatalf("no %s listener in %v", name, s.Endpoints())
	return "", 0
}

// device is the device's own connection settings; the fallback endpoint
// is a closed port unless a test sets another.
func device(dir, thing string) iot.Config {
	return iot.Config{
		Endpoint:  "127.0.0.1:1",
		Transport: iot.TransportMQTTS,
		ClientID:  thing,
		CertFile:  filepath.Join(dir, devcerts.DeviceCertFile),
		KeyFile:   filepath.Join(dir, devcerts.DeviceKeyFile),
	}
}

func closedPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func readPEM(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, devcerts.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func closeClient(t *testing.T, c *iot.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Error(err)
	}
}

// shadowRoundTrip updates thing's reported state through c and waits for
// the shadow service's /accepted with the same clientToken.
func shadowRoundTrip(t *testing.T, c *iot.Client, thing string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	got := make(chan map[string]any, 4)
	accepted := "$aws/things/" + thing + "/shadow/update/accepted"
	if err := c.Subscribe(ctx, accepted, iot.QoS1, func(m iot.Message) {
		var doc map[string]any
		_ = json.Unmarshal(m.Payload, &doc)
		got <- doc
	}); err != nil {
		t.Fatal(err)
	}
	token := fmt.Sprintf("rt-%d", time.Now().UnixNano())
	body := `{"state":{"reported":{"via":"core"}},"clientToken":"` + token + `"}`
	if _, err := c.Publish(ctx, "$aws/things/"+thing+"/shadow/update", []byte(body), iot.QoS1); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case doc := <-got:
			if doc["clientToken"] == token {
				return
			}
		case <-ctx.Done():
			t.Fatal("no /update/accepted for the shadow update")
		}
	}
}

// routed is a client routed over resp (fallback: the configured endpoint
// after the cores), with every failed attempt's error in order.
type routed struct {
	*iot.Client
	events <-chan iot.Event
	stop   func()
	failed []error
}

func newRouted(t *testing.T, resp *Response, dev iot.Config, fallback *iot.Route) *routed {
	t.Helper()
	dev.Router = NewRouter(resp, RouterOptions{Fallback: fallback})
	dev.Backoff = iot.BackoffConfig{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, Jitter: iot.JitterNone}
	dev.ConnectTimeout = 5 * time.Second
	cl, err := iot.New(dev)
	if err != nil {
		t.Fatal(err)
	}
	ev, stop := cl.Watch(64)
	r := &routed{Client: cl, events: ev, stop: stop}
	t.Cleanup(func() {
		r.stop()
		closeClient(t, cl)
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_ = cl.Connect(ctx) // a TLS failure ends Connect early; the client keeps trying
	return r
}

// until reads events until one of typ, recording failed attempts.
func (r *routed) until(t *testing.T, typ iot.EventType) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case e := <-r.events:
			if e.Type == iot.EventConnectFailed {
				r.failed = append(r.failed, e.Err)
			}
			if e.Type == typ {
				return
			}
		case <-deadline:
			t.Fatalf("no %v event; failed attempts so far: %v", typ, r.failed)
		}
	}
}

func TestRoutedClientTriesEveryEntryInOrder(t *testing.T) {
	dir := pki(t, "dev")
	core := localCore(t, dir)
	host, port := listenerAddr(t, core, "mqtts")
	intruder := readPEM(t, pki(t, "x"))
	resp := &Response{Groups: []Group{
		{ID: "wrong-ca", CAs: []string{intruder}, Cores: []Core{{ThingArn: "core-a", Connectivity: []Connectivity{
			{ID: "closed", HostAddress: "127.0.0.1", PortNumber: closedPort(t)},
			{ID: "wrong-ca", HostAddress: host, PortNumber: port},
		}}}},
		{ID: "right", CAs: []string{readPEM(t, dir)}, Cores: []Core{{ThingArn: "core-b", Connectivity: []Connectivity{
			{ID: "no-host", PortNumber: port}, // left out: nothing to dial
			{ID: "works", HostAddress: host, PortNumber: port},
			{ID: "never-tried", HostAddress: host, PortNumber: port},
		}}}},
	}}
	c := newRouted(t, resp, device(dir, "dev"), nil)
	c.until(t, iot.EventOnline)
	if d := c.Destination(); !strings.Contains(d, `core-b, entry "works"`) {
		t.Fatalf("connected via %q, want core-b entry works", d)
	}
	if len(c.failed) != 2 || !strings.Contains(c.failed[0].Error(), "refused") || !errors.Is(c.failed[1], iot.ErrTLS) {
		t.Fatalf("failed attempts %v, want the closed port refused, then the wrong CA's TLS failure", c.failed)
	}
	shadowRoundTrip(t, c.Client, "dev")
}

func TestRoutedClientVerifiesTheCoreHostName(t *testing.T) {
	dir := pki(t, "dev")
	core := localCore(t, dir)
	_, port := listenerAddr(t, core, "mqtts")
	// The development server certificate names localhost, 127.0.0.1 and
	// ::1: connecting by name works.
	resp := &Response{Groups: []Group{{ID: "g", CAs: []string{readPEM(t, dir)}, Cores: []Core{{ThingArn: "c", Connectivity: []Connectivity{
		{ID: "by-name", HostAddress: "localhost", PortNumber: port},
	}}}}}}
	newRouted(t, resp, device(dir, "dev"), nil).until(t, iot.EventOnline)

	// A certificate issued for another name is refused even from the
	// right CA.
	ca, err := devcerts.NewCA("core CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devcerts.Issue(ca, devcerts.IssueOptions{CommonName: "core.example", DNSNames: []string{"core.example"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	for name, b := range map[string][]byte{devcerts.ServerCertFile: srv.CertPEM, devcerts.ServerKeyFile: srv.KeyPEM, devcerts.CACertFile: readPEMBytes(t, dir)} {
		if err := os.WriteFile(filepath.Join(other, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	misnamed := localCore(t, other)
	h, p := listenerAddr(t, misnamed, "mqtts")
	resp = &Response{Groups: []Group{{ID: "g", CAs: []string{string(ca.CertPEM)}, Cores: []Core{{ThingArn: "c", Connectivity: []Connectivity{
		{ID: "by-ip", HostAddress: h, PortNumber: p},
	}}}}}}
	c := newRouted(t, resp, device(dir, "dev"), nil)
	c.until(t, iot.EventConnectFailed)
	if err := c.failed[0]; !errors.Is(err, iot.ErrTLS) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("err = %v, want a TLS host name failure", err)
	}
	if c.State() == iot.StateOnline {
		t.Fatal("online with a core certificate for another name")
	}
}

func readPEMBytes(t *testing.T, dir string) []byte { return []byte(readPEM(t, dir)) }

// No core answers: the fallback (the configured endpoint, with its own CA)
// serves.
func TestRoutedClientFallback(t *testing.T) {
	dir := pki(t, "dev")
	core := localCore(t, dir)
	h, p := listenerAddr(t, core, "mqtts")
	resp := &Response{Groups: []Group{{ID: "g", CAs: []string{readPEM(t, dir)}, Cores: []Core{{ThingArn: "c", Connectivity: []Connectivity{
		{ID: "closed", HostAddress: "127.0.0.1", PortNumber: closedPort(t)},
	}}}}}}
	dev := device(dir, "dev")
	dev.Endpoint, dev.CAFile = net.JoinHostPort(h, strconv.Itoa(p)), filepath.Join(dir, devcerts.CACertFile)
	c := newRouted(t, resp, dev, &iot.Route{Name: "IoT Core (fallback)"})
	c.until(t, iot.EventOnline)
	if d := c.Destination(); d != "IoT Core (fallback)" || len(c.failed) != 1 || !strings.Contains(c.failed[0].Error(), "refused") {
		t.Fatalf("connected via %q after %v, want the fallback after the closed entry", d, c.failed)
	}
	shadowRoundTrip(t, c.Client, "dev")
}
