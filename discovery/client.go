package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/iot/sigv4"
)

// ALPNProtocol is the ALPN protocol AWS requires for HTTPS with client
// certificates on port 443; the client offers it there automatically.
const ALPNProtocol = "x-amzn-http-ca"

// DefaultPort is the discovery service's mutual-TLS port.
const DefaultPort = 8443

// Defaults used for zero Config fields.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
)

// Config configures a Client. Zero values mean the documented defaults.
type Config struct {
	// Endpoint is "host" or "host:port" of the discovery service; the port
	// defaults to 8443. On port 443 ALPN x-amzn-http-ca is offered. AWS:
	// greengrass-ats.iot.<region>.amazonaws.com (see EndpointForRegion).
	Endpoint string
	// CertFile and KeyFile are the device certificate and key (PEM), the
	// same ones the device uses for AWS IoT.
	CertFile string
	KeyFile  string
	// CAFile holds the CAs the service's certificate must chain to
	// (AmazonRootCA1.pem); "" uses the system roots.
	CAFile string
	// ServerName overrides the name the certificate is verified against.
	ServerName string
	// Timeout bounds one request, connection to last body byte; default
	// 10 s (the v1 SDK's sample).
	Timeout time.Duration
	// MaxResponseBytes bounds the body; default 1 MiB (ten groups with
	// their CAs are a few tens of KiB).
	MaxResponseBytes int64
}

// EndpointForRegion returns AWS's discovery endpoint for a region.
func EndpointForRegion(region string) string {
	return "greengrass-ats.iot." + region + ".amazonaws.com"
}

// EndpointForIoT derives the discovery endpoint from an AWS IoT data
// endpoint (…-ats.iot.<region>.amazonaws.com), or returns "" when the
// endpoint names no region.
func EndpointForIoT(iotEndpoint string) string {
	host := iotEndpoint
	if h, _, err := net.SplitHostPort(iotEndpoint); err == nil {
		host = h
	}
	r := sigv4.RegionFromIoTEndpoint(host)
	if r == "" {
		return ""
	}
	return EndpointForRegion(r)
}

// Client asks the discovery service for a thing's cores. It is safe for
// concurrent use.
type Client struct {
	cfg  Config
	base url.URL
	http *http.Client
	tr   *http.Transport
}

// New loads the certificate and CA files and prepares the HTTPS client; it
// does not connect.
func New(cfg Config) (*Client, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.Timeout < 0 || cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("discovery: timeout %v and max response bytes %d must be positive", cfg.Timeout, cfg.MaxResponseBytes)
	}
	ep := strings.TrimSpace(cfg.Endpoint)
	if ep == "" || strings.Contains(ep, "://") || strings.Contains(ep, "/") {
		return nil, fmt.Errorf("discovery: endpoint %q: want host or host:port, e.g. %s", cfg.Endpoint, EndpointForRegion("eu-west-1"))
	}
	host, port := ep, DefaultPort
	if h, p, err := net.SplitHostPort(ep); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("discovery: endpoint %q: port must be 1–65535", cfg.Endpoint)
		}
		host, port = h, n
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("discovery: the device certificate and key are required (discovery authenticates the device by mutual TLS)")
	}
	pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("discovery: device certificate %s / key %s: %w", cfg.CertFile, cfg.KeyFile, err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, ServerName: host}
	if cfg.ServerName != "" {
		tc.ServerName = cfg.ServerName
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("discovery: CA file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("discovery: CA file %s contains no PEM certificate (use AmazonRootCA1.pem)", cfg.CAFile)
		}
	}
	if port == 443 {
		// Without it AWS takes port 443 for SigV4 HTTPS and refuses the
		// client certificate.
		tc.NextProtos = []string{ALPNProtocol}
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: cfg.Timeout,
		// A configured TLS config already keeps HTTP/2 off; the custom
		// ALPN protocol then falls back to HTTP/1.1, which is what AWS
		// speaks on it.
		ForceAttemptHTTP2: false,
		Proxy:             nil,
		MaxIdleConns:      1,
		IdleConnTimeout:   30 * time.Second,
	}
	c := &Client{
		cfg:  cfg,
		base: url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(port))},
		tr:   tr,
		http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// Endpoint returns the host:port asked.
func (c *Client) Endpoint() string { return c.base.Host }

// Discover asks for thing's discovery information. See the package doc
// for its errors.
func (c *Client) Discover(ctx context.Context, thing string) (*Response, error) {
	if thing == "" {
		return nil, fmt.Errorf("discovery: thing name is empty: %w", ErrBadRequest)
	}
	u := c.base
	u.Path = "/greengrass/discover/thing/" + thing
	u.RawPath = "/greengrass/discover/thing/" + url.PathEscape(thing)

	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("discovery: request for thing %q: %w", thing, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.failed(ctx, rctx, thing, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		se := &StatusError{Thing: thing, Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			se.RetryAfter = time.Duration(s) * time.Second
		}
		return nil, se
	}
	if resp.ContentLength > c.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("%w: thing %q: %d bytes announced, at most %d accepted", ErrResponseTooLarge, thing, resp.ContentLength, c.cfg.MaxResponseBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, c.failed(ctx, rctx, thing, err)
	}
	if int64(len(body)) > c.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("%w: thing %q: more than %d bytes", ErrResponseTooLarge, thing, c.cfg.MaxResponseBytes)
	}
	r, err := Parse(body)
	if err != nil {
		if rctx.Err() != nil {
			// The deadline passed while the answer came in: a cut-short or
			// empty body is the timeout's doing, not a malformed answer
			// (seen under emulation, where the server saw the cancel first).
			return nil, c.failed(ctx, rctx, thing, rctx.Err())
		}
		return nil, fmt.Errorf("discovery for thing %q from %s: %w", thing, c.base.Host, err)
	}
	return r, nil
}

// failed classifies a transport error: the caller's cancellation stays
// itself, a deadline (ours or the caller's) becomes ErrTimeout.
func (c *Client) failed(ctx, rctx context.Context, thing string, err error) error {
	if ctx.Err() == context.Canceled {
		return fmt.Errorf("discovery for thing %q: %w", thing, ctx.Err())
	}
	if errors.Is(rctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: thing %q at %s after at most %v: %w", ErrTimeout, thing, c.base.Host, c.cfg.Timeout, context.DeadlineExceeded)
	}
	return fmt.Errorf("discovery for thing %q at %s: %w", thing, c.base.Host, err)
}
