package iot

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

// pki is a CA with a server certificate for 127.0.0.1 and a device
// certificate, written to files.
type pki struct {
	ca, server, device *devcerts.Pair
	dir                string
	caFile, certFile   string
	keyFile            string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca, err := devcerts.NewCA("test CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server, err := devcerts.Issue(ca, devcerts.IssueOptions{CommonName: "broker", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	device, err := devcerts.Issue(ca, devcerts.IssueOptions{CommonName: "device-1", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{ca: ca, server: server, device: device, dir: t.TempDir()}
	p.caFile = p.write(t, "ca.pem", ca.CertPEM, 0o644)
	p.certFile = p.write(t, "device.pem", device.CertPEM, 0o644)
	p.keyFile = p.write(t, "device.key", device.KeyPEM, 0o600)
	return p
}

func (p *pki) write(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
	return path
}

// startTLSBroker serves MQTT over mutual TLS like AWS IoT: the client must
// present a certificate from clientCA. It reports negotiated ALPN.
func startTLSBroker(t *testing.T, server *devcerts.Pair, clientCA *devcerts.Pair, alpn bool) (*broker, *alpnListener) {
	t.Helper()
	cert, err := tls.X509KeyPair(server.CertPEM, server.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	if alpn {
		cfg.NextProtos = []string{"x-amzn-mqtt-ca"}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al := &alpnListener{Listener: ln, cfg: cfg, negotiated: make(chan string, 8)}
	return startBroker(t, al, nil), al
}

func negotiated(t *testing.T, al *alpnListener) string {
	t.Helper()
	select {
	case p := <-al.negotiated:
		return p
	case <-time.After(waitFor):
		t.Fatal("no TLS connection reached the broker")
		return ""
	}
}

func TestTLSGoodCertificateAndALPN(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name      string
		transport Transport
		wantALPN  string
	}{
		{"mqtts on a non-443 port offers no ALPN", TransportMQTTS, ""},
		{"443-style ALPN listener negotiates x-amzn-mqtt-ca", TransportALPN, "x-amzn-mqtt-ca"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, al := startTLSBroker(t, p.server, p.ca, true)
			got := make(chan string, 1)
			b.collect("tls/up", got)
			c := newClient(t, Config{Endpoint: b.addr, Transport: tc.transport, CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile})
			connect(t, c)
			if proto := negotiated(t, al); proto != tc.wantALPN {
				t.Fatalf("negotiated ALPN %q, want %q", proto, tc.wantALPN)
			}
			if _, err := c.Publish(ctxT(t), "tls/up", []byte("ok"), QoS1); err != nil {
				t.Fatal(err)
			}
			receiveN(t, got, 1)
		})
	}
}

func TestTLSConfigPort443OffersALPN(t *testing.T) {
	p := newPKI(t)
	cfg, err := tlsConfigs(Config{Transport: TransportMQTTS, CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}, "example.com", 443, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != ALPNProtocol || cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "example.com" {
		t.Fatalf("mqtts:443 config: NextProtos %v MinVersion %x ServerName %q", cfg.NextProtos, cfg.MinVersion, cfg.ServerName)
	}
	// wss gets its own config: no ALPN (gorilla/websocket would refuse it)
	// and no client certificate.
	wss, err := tlsConfigs(Config{Transport: TransportWSS, CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}, "example.com", 443, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(wss.NextProtos) != 0 || len(wss.Certificates) != 0 || wss.MinVersion != tls.VersionTLS12 {
		t.Fatalf("wss config: NextProtos %v, %d certificates", wss.NextProtos, len(wss.Certificates))
	}
}

func TestTLSHandshakeRefusals(t *testing.T) {
	p := newPKI(t)
	otherCA, err := devcerts.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expiredServer, err := devcerts.Issue(p.ca, devcerts.IssueOptions{CommonName: "old broker", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	otherCAFile := p.write(t, "other-ca.pem", otherCA.CertPEM, 0o644)

	tests := []struct {
		name     string
		server   *devcerts.Pair
		clientCA *devcerts.Pair // CA the broker trusts for device certs
		caFile   string         // CA the device trusts
		want     string
	}{
		{"wrong CA", p.server, p.ca, otherCAFile, "not signed by the configured CA"},
		{"expired broker certificate", expiredServer, p.ca, p.caFile, "expired"},
		{"device certificate not trusted by broker", p.server, otherCA, p.caFile, "broker rejected"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := startTLSBroker(t, tc.server, tc.clientCA, false)
			c := newClient(t, Config{Endpoint: b.addr, CAFile: tc.caFile, CertFile: p.certFile, KeyFile: p.keyFile})
			err := c.Connect(ctxT(t))
			var te *TLSError
			if !errors.Is(err, ErrTLS) || !errors.As(err, &te) {
				t.Fatalf("want a TLS error, got %v", err)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not say %q: %v", tc.want, err)
			}
			if c.State() == StateOnline {
				t.Fatal("client is online with a refused certificate")
			}
		})
	}
}

func TestTLSLocalFileErrors(t *testing.T) {
	p := newPKI(t)
	other, err := devcerts.Issue(p.ca, devcerts.IssueOptions{CommonName: "device-2", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := devcerts.Issue(p.ca, devcerts.IssueOptions{CommonName: "device-1", Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	otherKey := p.write(t, "other.key", other.KeyPEM, 0o600)
	groupKey := p.write(t, "group.key", p.device.KeyPEM, 0o640)
	worldKey := p.write(t, "world.key", p.device.KeyPEM, 0o604)
	expiredCert := p.write(t, "expired.pem", expired.CertPEM, 0o644)
	expiredKey := p.write(t, "expired.key", expired.KeyPEM, 0o600)
	notPEM := p.write(t, "garbage.pem", []byte("hello"), 0o644)
	missing := filepath.Join(p.dir, "missing.pem")

	tests := []struct {
		name           string
		cert, key, ca  string
		is             []error
		wantSubstrings []string
	}{
		{"missing certificate", missing, p.keyFile, p.caFile, []error{ErrConfig, ErrTLS, fs.ErrNotExist}, []string{"certificate file " + missing, "check the path"}},
		{"missing key", p.certFile, missing, p.caFile, []error{ErrConfig, ErrTLS, fs.ErrNotExist}, []string{"private key file " + missing}},
		{"missing CA", p.certFile, p.keyFile, missing, []error{ErrConfig, fs.ErrNotExist}, []string{"CA file " + missing}},
		{"CA not PEM", p.certFile, p.keyFile, notPEM, []error{ErrConfig}, []string{"no PEM certificate"}},
		{"key does not match certificate", p.certFile, otherKey, p.caFile, []error{ErrConfig, ErrTLS, ErrKeyMismatch}, []string{"does not match the certificate " + p.certFile}},
		{"group-readable key", p.certFile, groupKey, p.caFile, []error{ErrConfig, ErrTLS, fs.ErrPermission}, []string{"mode 0640", "0600", "chmod 600 " + groupKey}},
		{"world-readable key", p.certFile, worldKey, p.caFile, []error{fs.ErrPermission}, []string{"mode 0604", "chmod 600 " + worldKey}},
		{"expired device certificate", expiredCert, expiredKey, p.caFile, []error{ErrConfig, ErrTLS}, []string{"expired on", "new device certificate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Endpoint: "127.0.0.1:8883", ClientID: "d", CertFile: tc.cert, KeyFile: tc.key, CAFile: tc.ca})
			if err == nil {
				t.Fatal("New accepted it")
			}
			t.Logf("error: %v", err)
			for _, target := range tc.is {
				if !errors.Is(err, target) {
					t.Errorf("error is not %v: %v", target, err)
				}
			}
			for _, s := range tc.wantSubstrings {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error does not say %q: %v", s, err)
				}
			}
		})
	}

	t.Run("unreadable key", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root can read a mode-0000 file")
		}
		k := p.write(t, "locked.key", p.device.KeyPEM, 0o000)
		_, err := New(Config{Endpoint: "h", ClientID: "d", CertFile: p.certFile, KeyFile: k})
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "cannot read") {
			t.Fatalf("unreadable key: %v", err)
		}
	})
}
