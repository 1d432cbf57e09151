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

func TestConnectTriesEveryEntryInOrder(t *testing.T) {
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
			{ID: "no-host", PortNumber: port},
			{ID: "works", HostAddress: host, PortNumber: port},
			{ID: "never-tried", HostAddress: host, PortNumber: port},
		}}}},
	}}
	var told []string
	caDir := filepath.Join(t.TempDir(), "cas")
	conn, err := Connect(context.Background(), resp, ConnectOptions{
		Device: device(dir, "dev"), CADir: caDir,
		OnAttempt: func(a Attempt) { told = append(told, a.Candidate.Entry.ID) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(t, conn.Client)
	if conn.Fallback || conn.Candidate.Entry.ID != "works" || conn.Candidate.CoreArn != "core-b" || conn.Candidate.GroupID != "right" {
		t.Fatalf("connected via %s (fallback %v), want core-b entry works", conn.Endpoint(), conn.Fallback)
	}
	if !strings.Contains(conn.Endpoint(), `entry "works"`) {
		t.Errorf("Endpoint() = %q", conn.Endpoint())
	}
	var ids []string
	for _, a := range conn.Failed {
		ids = append(ids, a.Candidate.Entry.ID)
	}
	if strings.Join(ids, ",") != "closed,wrong-ca,no-host" || strings.Join(told, ",") != "closed,wrong-ca,no-host" {
		t.Fatalf("failed entries %v (told %v), want closed, wrong-ca, no-host", ids, told)
	}
	if err := conn.Failed[0].Err; !strings.Contains(err.Error(), "refused") {
		t.Errorf("closed port: %v", err)
	}
	if err := conn.Failed[1].Err; !errors.Is(err, iot.ErrTLS) {
		t.Errorf("wrong CA: %v, want iot.ErrTLS", err)
	}
	if err := conn.Failed[2].Err; !strings.Contains(err.Error(), "no HostAddress") {
		t.Errorf("no host: %v", err)
	}
	if _, err := os.Stat(filepath.Join(caDir, "group-right.pem")); err != nil {
		t.Errorf("group CA not kept: %v", err)
	}
	shadowRoundTrip(t, conn.Client, "dev")
}

func TestConnectVerifiesTheCoreHostName(t *testing.T) {
	dir := pki(t, "dev")
	core := localCore(t, dir)
	_, port := listenerAddr(t, core, "mqtts")
	// The development server certificate names localhost, 127.0.0.1 and
	// ::1: connecting by name works.
	resp := &Response{Groups: []Group{{ID: "g", CAs: []string{readPEM(t, dir)}, Cores: []Core{{ThingArn: "c", Connectivity: []Connectivity{
		{ID: "by-name", HostAddress: "localhost", PortNumber: port},
	}}}}}}
	conn, err := Connect(context.Background(), resp, ConnectOptions{Device: device(dir, "dev"), CADir: t.TempDir()})
	if err != nil {
		t.Fatalf("localhost is in the certificate: %v", err)
	}
	closeClient(t, conn.Client)

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
	_, err = Connect(context.Background(), resp, ConnectOptions{Device: device(dir, "dev"), CADir: t.TempDir()})
	var ce *ConnectError
	if !errors.As(err, &ce) || len(ce.Attempts) != 1 || !errors.Is(ce.Attempts[0].Err, iot.ErrTLS) || !strings.Contains(ce.Attempts[0].Err.Error(), "127.0.0.1") {
		t.Fatalf("err = %v, want a TLS host name failure", err)
	}
}

func readPEMBytes(t *testing.T, dir string) []byte { return []byte(readPEM(t, dir)) }

func TestConnectFallback(t *testing.T) {
	dir := pki(t, "dev")
	core := localCore(t, dir)
	h, p := listenerAddr(t, core, "mqtt")
	resp := &Response{Groups: []Group{{ID: "g", CAs: []string{readPEM(t, dir)}, Cores: []Core{{ThingArn: "c", Connectivity: []Connectivity{
		{ID: "closed", HostAddress: "127.0.0.1", PortNumber: closedPort(t)},
	}}}}}}
	dev := device(dir, "dev")

	t.Run("without fallback", func(t *testing.T) {
		_, err := Connect(context.Background(), resp, ConnectOptions{Device: dev, CADir: t.TempDir()})
		if !errors.Is(err, ErrNoCore) || !strings.Contains(err.Error(), `entry "closed"`) {
			t.Errorf("err = %v", err)
		}
		if _, err := Connect(context.Background(), &Response{}, ConnectOptions{Device: dev, CADir: t.TempDir()}); !errors.Is(err, ErrNoCore) || !strings.Contains(err.Error(), "no core") {
			t.Errorf("empty response: %v", err)
		}
	})
	t.Run("to the IoT Core endpoint", func(t *testing.T) {
		dev := dev
		dev.Transport, dev.Endpoint = iot.TransportTCP, net.JoinHostPort(h, strconv.Itoa(p))
		conn, err := Connect(context.Background(), resp, ConnectOptions{Device: dev, CADir: t.TempDir(), Fallback: true})
		if err != nil {
			t.Fatal(err)
		}
		defer closeClient(t, conn.Client)
		if !conn.Fallback || len(conn.Failed) != 1 || conn.Client.State() != iot.StateIdle {
			t.Fatalf("fallback %v failed %v state %v", conn.Fallback, conn.Failed, conn.Client.State())
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := conn.Client.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		shadowRoundTrip(t, conn.Client, "dev")
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Connect(ctx, resp, ConnectOptions{Device: dev, CADir: t.TempDir(), Fallback: true}); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("CADir required", func(t *testing.T) {
		if _, err := Connect(context.Background(), resp, ConnectOptions{Device: dev}); err == nil {
			t.Error("no error without CADir")
		}
	})
}
