package localcloud

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

func tlsServer(t *testing.T) (s *Server, dir string) {
	dir = t.TempDir()
	if err := devcerts.WriteSet(dir, "tls-thing", false); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.TLSListen = "127.0.0.1:0"
	o.TLSCertFile = filepath.Join(dir, devcerts.ServerCertFile)
	o.TLSKeyFile = filepath.Join(dir, devcerts.ServerKeyFile)
	o.ClientCAFile = filepath.Join(dir, devcerts.CACertFile)
	return startServer(t, o), dir
}

func clientTLS(t *testing.T, dir string, cert *tls.Certificate) *tls.Config {
	pem, err := os.ReadFile(filepath.Join(dir, devcerts.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

func TestMutualTLS(t *testing.T) {
	s, dir := tlsServer(t)
	addr := endpoint(t, s, "mqtts")
	dev, err := tls.LoadX509KeyPair(filepath.Join(dir, devcerts.DeviceCertFile), filepath.Join(dir, devcerts.DeviceKeyFile))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("device certificate accepted", func(t *testing.T) {
		c := connect(t, "ssl://"+addr, clientTLS(t, dir, &dev))
		c.subscribe("$aws/things/tls-thing/shadow/update/accepted")
		c.publish("$aws/things/tls-thing/shadow/update", `{"state":{"reported":{"secure":true}},"clientToken":"t"}`)
		if acc := c.expect("$aws/things/tls-thing/shadow/update/accepted"); acc["clientToken"] != "t" {
			t.Errorf("accepted = %v", acc)
		}
	})
	t.Run("no client certificate refused", func(t *testing.T) {
		if c, err := dial("ssl://"+addr, clientTLS(t, dir, nil)); err == nil {
			c.c.Disconnect(0)
			t.Fatal("connected without a client certificate")
		}
	})
	t.Run("certificate from another CA refused", func(t *testing.T) {
		ca, err := devcerts.NewCA("intruder CA", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p, err := devcerts.Issue(ca, devcerts.IssueOptions{CommonName: "tls-thing", Client: true})
		if err != nil {
			t.Fatal(err)
		}
		other, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := dial("ssl://"+addr, clientTLS(t, dir, &other)); err == nil {
			c.c.Disconnect(0)
			t.Fatal("connected with a certificate from another CA")
		}
	})
	t.Run("ALPN x-amzn-mqtt-ca negotiated", func(t *testing.T) {
		cfg := clientTLS(t, dir, &dev)
		cfg.NextProtos = []string{ALPNProtocol}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if p := conn.ConnectionState().NegotiatedProtocol; p != ALPNProtocol {
			t.Errorf("negotiated %q, want %q", p, ALPNProtocol)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		cfg := clientTLS(t, dir, &dev)
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr, cfg)
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
	})
}

func TestBadTLSFiles(t *testing.T) {
	dir := t.TempDir()
	if err := devcerts.WriteSet(dir, "x", false); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.TLSListen = "127.0.0.1:0"
	o.TLSCertFile = filepath.Join(dir, "missing.crt")
	o.TLSKeyFile = filepath.Join(dir, devcerts.ServerKeyFile)
	o.ClientCAFile = filepath.Join(dir, devcerts.CACertFile)
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "missing.crt") {
		t.Errorf("missing cert: %v", err)
	}
	o.TLSCertFile = filepath.Join(dir, devcerts.ServerCertFile)
	o.ClientCAFile = filepath.Join(dir, devcerts.ServerKeyFile) // a key, not a certificate
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), devcerts.ServerKeyFile) {
		t.Errorf("CA file without certificate: %v", err)
	}
}

func TestWebSocketListener(t *testing.T) {
	o := testOptions(t)
	o.Listen = ""
	o.WSListen = "127.0.0.1:0"
	s := startServer(t, o)
	c := connect(t, "ws://"+endpoint(t, s, "ws")+"/mqtt", nil)
	c.subscribe("$aws/things/web/shadow/get/+")
	c.publish("$aws/things/web/shadow/get", `{"clientToken":"w"}`)
	if rej := c.expect("$aws/things/web/shadow/get/rejected"); num(rej["code"]) != 404 || rej["clientToken"] != "w" {
		t.Errorf("get over websocket: %v", rej)
	}
}
