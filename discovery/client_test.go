package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

const waitFor = 10 * time.Second

// pki is a development PKI in a temp dir: ca.crt, server.crt (localhost,
// 127.0.0.1), device.crt (CN = thing).
func pki(t testing.TB, thing string) string {
	t.Helper()
	dir := t.TempDir()
	if err := devcerts.WriteSet(dir, thing, false); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mtlsServer is an httptest TLS server that requires a client certificate
// from dir's CA.
func mtlsServer(t *testing.T, dir string, h http.Handler) *httptest.Server {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, devcerts.ServerCertFile), filepath.Join(dir, devcerts.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(dir, devcerts.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func newClient(t *testing.T, dir, endpoint string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Endpoint: endpoint,
		CertFile: filepath.Join(dir, devcerts.DeviceCertFile),
		KeyFile:  filepath.Join(dir, devcerts.DeviceKeyFile),
		CAFile:   filepath.Join(dir, devcerts.CACertFile),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func hostPort(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "https://") }

// statusHandler answers per thing name, as the discovery service would.
func statusHandler(t *testing.T, arrived chan<- string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			t.Errorf("request %s %s without a client certificate", r.Method, r.URL)
		}
		thing, ok := strings.CutPrefix(r.URL.EscapedPath(), "/greengrass/discover/thing/")
		if !ok {
			t.Errorf("path %q", r.URL.EscapedPath())
		}
		if arrived != nil {
			arrived <- thing
		}
		switch thing {
		case "ok":
			w.Write([]byte(v1Fixture()))
		case "bad":
			http.Error(w, `{"message":"bad thing"}`, 400)
		case "unauth":
			http.Error(w, `{"message":"no"}`, 401)
		case "missing":
			http.Error(w, `{"message":"not found"}`, 404)
		case "throttled":
			w.Header().Set("Retry-After", "7")
			http.Error(w, `{"message":"slow down"}`, 429)
		case "broken":
			http.Error(w, "1234", 500)
		case "loud":
			w.WriteHeader(502)
			w.Write([]byte(strings.Repeat("x", 100_000)))
		case "slow", "cancel":
			<-r.Context().Done()
		case "huge":
			w.Write([]byte(`{"GGGroups":[{"GGGroupId":"` + strings.Repeat("g", 2<<20) + `"}]}`))
		case "huge-chunked":
			w.Write([]byte(`{"GGGroups":[{"GGGroupId":"`))
			w.(http.Flusher).Flush()
			for range 40 {
				w.Write([]byte(strings.Repeat("g", 64<<10)))
			}
		case "garbage":
			w.Write([]byte("<html>oops</html>"))
		case "a%2Fb%20c%3F":
			w.Write([]byte(`{"GGGroups":[]}`))
		default:
			http.Error(w, "unexpected thing "+thing, 418)
		}
	})
}

func TestDiscoverStatuses(t *testing.T) {
	dir := pki(t, "dev")
	srv := mtlsServer(t, dir, statusHandler(t, nil))
	c := newClient(t, dir, hostPort(srv), nil)
	ctx := context.Background()

	r, err := c.Discover(ctx, "ok")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Candidates()) != 3 {
		t.Errorf("candidates = %d, want 3", len(r.Candidates()))
	}

	tests := []struct {
		thing    string
		sentinel error
		status   int
		body     string
	}{
		{"bad", ErrBadRequest, 400, "bad thing"},
		{"unauth", ErrUnauthorized, 401, "no"},
		{"missing", ErrNotFound, 404, "not found"},
		{"throttled", ErrThrottled, 429, "slow down"},
		{"broken", nil, 500, "1234"},
	}
	all := []error{ErrBadRequest, ErrUnauthorized, ErrNotFound, ErrThrottled, ErrTimeout}
	for _, tt := range tests {
		t.Run(tt.thing, func(t *testing.T) {
			_, err := c.Discover(ctx, tt.thing)
			var se *StatusError
			if !errors.As(err, &se) || se.Status != tt.status || !strings.Contains(se.Body, tt.body) || se.Thing != tt.thing {
				t.Fatalf("err = %#v, want a StatusError %d with %q", err, tt.status, tt.body)
			}
			for _, s := range all {
				if errors.Is(err, s) != (s == tt.sentinel) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tt.sentinel))
				}
			}
			if Permanent(err) != (tt.status == 400 || tt.status == 401 || tt.status == 404) {
				t.Errorf("Permanent(%d) = %v", tt.status, Permanent(err))
			}
		})
	}
	t.Run("retry-after kept", func(t *testing.T) {
		_, err := c.Discover(ctx, "throttled")
		var se *StatusError
		if !errors.As(err, &se) || se.RetryAfter != 7*time.Second {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("error body bounded", func(t *testing.T) {
		_, err := c.Discover(ctx, "loud")
		var se *StatusError
		if !errors.As(err, &se) || se.Status != 502 || len(se.Body) > maxErrorBody {
			t.Errorf("502 body kept %d bytes (err %.80v)", len(se.Body), err)
		}
	})
	for _, thing := range []string{"huge", "huge-chunked"} {
		t.Run(thing, func(t *testing.T) {
			if _, err := c.Discover(ctx, thing); !errors.Is(err, ErrResponseTooLarge) {
				t.Errorf("err = %v, want ErrResponseTooLarge", err)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		if _, err := c.Discover(ctx, "garbage"); !errors.Is(err, ErrResponse) {
			t.Errorf("err = %v, want ErrResponse", err)
		}
	})
	t.Run("thing name path-escaped", func(t *testing.T) {
		r, err := c.Discover(ctx, "a/b c?")
		if err != nil || len(r.Groups) != 0 {
			t.Errorf("Discover(a/b c?) = %v, %v", r, err)
		}
	})
	t.Run("empty thing", func(t *testing.T) {
		if _, err := c.Discover(ctx, ""); !errors.Is(err, ErrBadRequest) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestDiscoverTimeouts(t *testing.T) {
	dir := pki(t, "dev")
	arrived := make(chan string, 1)
	srv := mtlsServer(t, dir, statusHandler(t, arrived))

	// settle waits for the slow request to have reached the server, so its
	// arrival cannot be taken for the next subtest's. Under emulation a
	// 50 ms deadline can expire in the TLS handshake: then none comes.
	settle := func() {
		select {
		case <-arrived:
		case <-time.After(2 * time.Second):
		}
	}
	t.Run("configured timeout", func(t *testing.T) {
		c := newClient(t, dir, hostPort(srv), func(c *Config) { c.Timeout = 50 * time.Millisecond })
		_, err := c.Discover(context.Background(), "slow")
		settle()
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want ErrTimeout", err)
		}
	})
	t.Run("caller's deadline", func(t *testing.T) {
		c := newClient(t, dir, hostPort(srv), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Discover(ctx, "slow")
		settle()
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("err = %v, want ErrTimeout", err)
		}
	})
	t.Run("caller's cancellation is not a timeout", func(t *testing.T) {
		c := newClient(t, dir, hostPort(srv), nil)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-arrived; cancel() }()
		_, err := c.Discover(ctx, "cancel")
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestDiscoverTLS(t *testing.T) {
	dir := pki(t, "dev")
	srv := mtlsServer(t, dir, statusHandler(t, nil))
	t.Run("device certificate from another CA refused", func(t *testing.T) {
		other := pki(t, "dev")
		c := newClient(t, dir, hostPort(srv), func(c *Config) {
			c.CertFile = filepath.Join(other, devcerts.DeviceCertFile)
			c.KeyFile = filepath.Join(other, devcerts.DeviceKeyFile)
		})
		_, err := c.Discover(context.Background(), "ok")
		var se *StatusError
		if err == nil || errors.As(err, &se) || errors.Is(err, ErrTimeout) {
			t.Errorf("err = %v, want a TLS failure", err)
		}
	})
	t.Run("service certificate from another CA refused", func(t *testing.T) {
		other := pki(t, "dev")
		c := newClient(t, dir, hostPort(srv), func(c *Config) { c.CAFile = filepath.Join(other, devcerts.CACertFile) })
		_, err := c.Discover(context.Background(), "ok")
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) {
			t.Errorf("err = %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("ALPN offered on 443 only", func(t *testing.T) {
		c443 := newClient(t, dir, "example.com:443", nil)
		if p := c443.tr.TLSClientConfig.NextProtos; len(p) != 1 || p[0] != ALPNProtocol {
			t.Errorf("443: NextProtos %v", p)
		}
		c8443 := newClient(t, dir, "example.com", nil)
		if p := c8443.tr.TLSClientConfig.NextProtos; len(p) != 0 || c8443.Endpoint() != "example.com:8443" {
			t.Errorf("default: NextProtos %v endpoint %s", p, c8443.Endpoint())
		}
	})
}

func TestNewValidates(t *testing.T) {
	dir := pki(t, "dev")
	base := Config{Endpoint: "h", CertFile: filepath.Join(dir, devcerts.DeviceCertFile), KeyFile: filepath.Join(dir, devcerts.DeviceKeyFile)}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "endpoint"},
		{"scheme", func(c *Config) { c.Endpoint = "https://h" }, "host or host:port"},
		{"bad port", func(c *Config) { c.Endpoint = "h:0" }, "port"},
		{"no cert", func(c *Config) { c.CertFile = "" }, "certificate and key are required"},
		{"missing key", func(c *Config) { c.KeyFile = filepath.Join(dir, "nope") }, "nope"},
		{"CA not PEM", func(c *Config) { c.CAFile = filepath.Join(dir, devcerts.CAKeyFile) }, "no PEM certificate"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "positive"},
	}
	for _, tt := range tests {
		cfg := base
		tt.mod(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestEndpointForIoT(t *testing.T) {
	for in, want := range map[string]string{
		"abc123-ats.iot.eu-west-1.amazonaws.com":      "greengrass-ats.iot.eu-west-1.amazonaws.com",
		"abc123-ats.iot.us-east-2.amazonaws.com:8883": "greengrass-ats.iot.us-east-2.amazonaws.com",
		"localhost:8883": "",
	} {
		if got := EndpointForIoT(in); got != want {
			t.Errorf("EndpointForIoT(%s) = %q, want %q", in, got, want)
		}
	}
	_ = net.JoinHostPort
}
