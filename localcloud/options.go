// Package localcloud is a local stand-in for AWS IoT Core: an MQTT broker
// (embedded mochi-mqtt, or an external broker such as mosquitto that the
// service attaches to as a client) with the Device Shadow service of
// package shadow and the Jobs service of package jobs attached. It adds what the pure engine leaves out: the
// MQTT plumbing, per-shadow ordering with parallelism across shadows,
// AWS's request-rate and in-flight limits, and durable storage in bbolt
// where an accepted update is on disk before its /accepted is published.
package localcloud

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/jobs"
	"github.com/pinshadow/pinshadow/localcloud/shadow"
)

// Options configure a Server. Use DefaultOptions and change what you need:
// in the zero value every limit is off and no listener is configured.
type Options struct {
	// Listen is the plain-TCP MQTT listen address ("" = none), e.g.
	// "127.0.0.1:1883"; port 0 picks a free port (see Server.Endpoints).
	Listen string
	// TLSListen is the MQTT-over-mutual-TLS listen address ("" = none). It
	// needs TLSCertFile, TLSKeyFile and ClientCAFile (PEM): clients must
	// present a certificate that chains to the client CA, as on AWS IoT.
	TLSListen    string
	TLSCertFile  string
	TLSKeyFile   string
	ClientCAFile string
	// WSListen is an MQTT-over-WebSocket listen address ("" = none).
	WSListen string

	// DiscoveryListen is the Greengrass discovery listen address ("" =
	// none): HTTPS with mutual TLS (same certificate, key and client CA as
	// TLSListen, which it needs), answering GET
	// /greengrass/discover/thing/<thing> with this server as the one core
	// of group DiscoveryGroupID, reachable at the TLSListen port.
	DiscoveryListen string
	// DiscoveryHosts are the host addresses advertised as the core's
	// connectivity entries, in order; default: the TLSListen host
	// ("localhost" when it listens on every interface). They must be
	// names the server certificate is valid for.
	DiscoveryHosts []string
	// DiscoveryCAFile is the group CA advertised: the CA (PEM) the server
	// certificate chains to; default ClientCAFile (`agent certs` signs
	// both with one CA).
	DiscoveryCAFile string

	// Broker, when set, attaches the shadow service to an external MQTT
	// broker at this URL (tcp://host:port, ssl://…, ws://…) instead of
	// embedding one; the listen options must then be empty.
	Broker string
	// BrokerClientID is the MQTT client ID used with Broker.
	BrokerClientID string

	// DataDir stores shadows durably in DataDir/shadows.db ("" = memory).
	DataDir string

	// Engine configures the shadow rules (document size, depth, clientToken
	// length, re-create version policy, forget-after window).
	Engine shadow.Options

	// RatePerThing is the sustained request rate allowed per thing (all its
	// shadows together) in requests per second; excess requests are
	// rejected with 429. 0 disables the limit.
	RatePerThing float64
	// RateBurst is the token-bucket size for RatePerThing (≥ 1 when the
	// rate limit is on).
	RateBurst int
	// MaxInFlight is how many requests one MQTT connection may have queued
	// or unanswered; the next one is rejected with 429. 0 disables it. In
	// attach mode connections are not visible, so the limit applies per
	// thing instead.
	MaxInFlight int

	// Shards is the number of shadow workers; requests for one shadow
	// always go to the same worker. 0 = 2×GOMAXPROCS (at least 4).
	Shards int

	// Jobs configures the Jobs service (job document size limit).
	Jobs jobs.Options
	// JobsTick is how often the Jobs service checks step and in-progress
	// timeouts against Now (0 = DefaultJobsTick). Tests with a fake Now
	// make it short.
	JobsTick time.Duration
	// Metrics, when set, counts requests, results, throttling and requests
	// in flight (see NewMetrics).
	Metrics *Metrics

	// OpenResponseTopics lets any client of the embedded broker publish on
	// the shadow response topics (…/accepted, …/rejected, update/delta,
	// update/documents). Off, only the shadow service does, as under a
	// least-privilege AWS IoT policy, and a client that tries is
	// disconnected: a forged delta with an absurd version would otherwise
	// wedge a device's version gate. For tests that play the service.
	OpenResponseTopics bool

	// Logger receives the service's logs (nil = discard).
	Logger *slog.Logger
	// Now is the clock used for shadow timestamps and rate limits (nil =
	// time.Now).
	Now func() time.Time

	// hooks are test-only interception points.
	hooks testHooks
	// compactAfter overrides the journal length that triggers compaction
	// (tests; 0 = default).
	compactAfter int
}

// testHooks let in-package tests stop the pipeline at known points.
type testHooks struct {
	// submitted is called after a request was queued for its shard.
	submitted func(k shadow.Key, op shadow.Op)
	// beforeHandle is called by a shard worker before it handles a request.
	beforeHandle func(k shadow.Key, op shadow.Op)
}

// Defaults AWS IoT Core applies, used by DefaultOptions.
const (
	DefaultListen       = "127.0.0.1:1883"
	DefaultRatePerThing = 20
	DefaultRateBurst    = 20
	DefaultMaxInFlight  = 10
	// MaxPacketSize is AWS IoT's MQTT message size limit (128 KiB).
	MaxPacketSize = 128 * 1024
)

// DefaultOptions returns AWS IoT Core's limits with a plain listener on
// 127.0.0.1:1883, in memory.
func DefaultOptions() Options {
	return Options{
		Listen:         DefaultListen,
		BrokerClientID: "pinshadow-shadow-service",
		Engine:         shadow.Options{Limits: shadow.DefaultLimits(), ForgetDeletedAfter: 48 * time.Hour},
		RatePerThing:   DefaultRatePerThing,
		RateBurst:      DefaultRateBurst,
		MaxInFlight:    DefaultMaxInFlight,
	}
}

// ErrOptions is wrapped by every error New returns for invalid Options.
var ErrOptions = errors.New("invalid options")

func (o *Options) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, a...))
	}
	if o.Broker != "" {
		if o.Listen != "" || o.TLSListen != "" || o.WSListen != "" {
			return bad("--broker attaches to an external broker; do not combine it with --listen, --tls-listen or --ws-listen (use --listen '' to turn the default listener off)")
		}
		u, err := url.Parse(o.Broker)
		if err != nil || u.Host == "" {
			return bad("broker URL %q: want scheme://host:port, e.g. tcp://127.0.0.1:1883", o.Broker)
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		default:
			return bad("broker URL %q: unsupported scheme %q (use tcp, ssl, ws or wss)", o.Broker, u.Scheme)
		}
	} else if o.Listen == "" && o.TLSListen == "" && o.WSListen == "" {
		return bad("no listener: set --listen, --tls-listen or --ws-listen, or --broker")
	}
	if o.TLSListen != "" && (o.TLSCertFile == "" || o.TLSKeyFile == "" || o.ClientCAFile == "") {
		return bad("--tls-listen %s needs --tls-cert, --tls-key and --client-ca (create them with 'agent certs')", o.TLSListen)
	}
	if o.DiscoveryListen != "" && (o.Broker != "" || o.TLSListen == "") {
		return bad("--discovery-listen %s describes this server as a Greengrass core reachable at its MQTT mutual-TLS listener: it needs --tls-listen (and the embedded broker, not --broker)", o.DiscoveryListen)
	}
	for _, h := range o.DiscoveryHosts {
		if h == "" || strings.ContainsAny(h, " /:") && net.ParseIP(h) == nil {
			return bad("discovery host %q: want a host name or IP address (no port: the --tls-listen port is advertised)", h)
		}
	}
	if o.RatePerThing < 0 {
		return bad("rate per thing %v: must be ≥ 0 (0 = off)", o.RatePerThing)
	}
	if o.RatePerThing > 0 && o.RateBurst < 1 {
		return bad("rate burst %d: must be ≥ 1 when the rate limit is on", o.RateBurst)
	}
	if o.MaxInFlight < 0 {
		return bad("max in-flight %d: must be ≥ 0 (0 = off)", o.MaxInFlight)
	}
	if o.JobsTick < 0 {
		return bad("jobs tick %v: must be ≥ 0 (0 = %v)", o.JobsTick, DefaultJobsTick)
	}
	if o.JobsTick == 0 {
		o.JobsTick = DefaultJobsTick
	}
	if o.Shards < 0 {
		return bad("shards %d: must be ≥ 0", o.Shards)
	}
	l := o.Engine.Limits
	if l.MaxDocumentBytes < 0 || l.MaxDepth < 0 || l.MaxClientTokenBytes < 0 {
		return bad("engine limits must not be negative (0 = AWS default): %+v", l)
	}
	if o.Engine.ForgetDeletedAfter < 0 {
		return bad("forget-after %v: must be ≥ 0 (0 = never)", o.Engine.ForgetDeletedAfter)
	}
	if o.Shards == 0 {
		o.Shards = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.BrokerClientID == "" {
		o.BrokerClientID = "pinshadow-shadow-service"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}
