package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/discovery"
	"github.com/pinshadow/pinshadow/iot"
)

// Discovery is connection.discovery: find a Greengrass core through AWS's
// discovery API and connect to it instead of the endpoint (which stays the
// fallback).
type Discovery struct {
	// Enabled is true when the section is present, unless enabled: false.
	Enabled bool
	// Endpoint is the discovery service's host:port; default
	// greengrass-ats.iot.<region>.amazonaws.com:8443 for the region of the
	// connection's AWS IoT endpoint.
	Endpoint string
	// CAFile is the CA of the discovery service's certificate; default the
	// connection's ca.
	CAFile string
	// Timeout bounds one discovery request (default 10s); Attempts is how
	// many are made (default 3) with 1, 2, 4 … s between them, stopping at
	// once on 400, 401 and 404.
	Timeout  time.Duration
	Attempts int
	// ConnectTimeout bounds the attempt on each core address (default 10s).
	ConnectTimeout time.Duration
	// Fallback connects to the endpoint when discovery fails or no core
	// answers (default true); false keeps the device off IoT Core: it
	// waits for a core, asking discovery again every RediscoverInterval.
	Fallback bool
	// RediscoverInterval is the least time between two discovery requests
	// made because no core answered (default 1m): the agent asks again
	// after every round of core addresses that all failed.
	RediscoverInterval time.Duration
}

// Defaults of connection.discovery.
const (
	DefaultDiscoveryTimeout  = 10 * time.Second
	DefaultDiscoveryAttempts = 3
)

var discoveryKeys = []string{"enabled", "endpoint", "port", "ca", "timeout", "attempts", "connect_timeout", "fallback", "rediscover_interval"}

// discovery parses connection.discovery; c is the connection parsed so far.
func (fp fileParser) discovery(p kv, c Connection) Discovery {
	d := Discovery{Enabled: true, Timeout: DefaultDiscoveryTimeout, Attempts: DefaultDiscoveryAttempts,
		ConnectTimeout: discovery.DefaultEntryTimeout, Fallback: true, CAFile: c.CAFile,
		RediscoverInterval: discovery.DefaultRediscoverInterval}
	f := map[string]kv{}
	for _, q := range fp.pairs(p.val, "discovery", discoveryKeys) {
		f[q.name] = q
	}
	if q, ok := f["enabled"]; ok {
		d.Enabled, _ = fp.boolean(q.val, "discovery enabled")
	}
	if q, ok := f["fallback"]; ok {
		d.Fallback, _ = fp.boolean(q.val, "discovery fallback")
	}
	if q, ok := f["ca"]; ok {
		d.CAFile, _ = fp.str(q.val, "discovery ca")
	}
	for name, dst := range map[string]*time.Duration{"timeout": &d.Timeout, "connect_timeout": &d.ConnectTimeout} {
		if q, ok := f[name]; ok {
			if v, ok := fp.duration(q.val, "discovery "+name); ok {
				if v < 100*time.Millisecond || v > 5*time.Minute {
					fp.errf(q.val, "discovery %s %v is out of range; allowed: 100ms to 5m", name, v)
				} else {
					*dst = v
				}
			}
		}
	}
	if q, ok := f["rediscover_interval"]; ok {
		if v, ok := fp.duration(q.val, "discovery rediscover_interval"); ok {
			if v < time.Second || v > 24*time.Hour {
				fp.errf(q.val, "discovery rediscover_interval %v is out of range; allowed: 1s to 24h (AWS throttles the discovery API: keep it at a minute or more in production)", v)
			} else {
				d.RediscoverInterval = v
			}
		}
	}
	if q, ok := f["attempts"]; ok {
		if v, ok := fp.integer(q.val, "discovery attempts", 1, 10); ok {
			d.Attempts = v
		}
	}
	port := discovery.DefaultPort
	if q, ok := f["port"]; ok {
		if v, ok := fp.integer(q.val, "discovery port", 1, 65535); ok {
			port = v
		}
	}
	host := ""
	if q, ok := f["endpoint"]; ok {
		if v, ok := fp.str(q.val, "discovery endpoint"); ok {
			switch {
			case v == "" || strings.Contains(v, "://") || strings.Contains(v, "/"):
				fp.errf(q.val, "discovery endpoint %q: write the host only (and port: N), such as %s", v, discovery.EndpointForRegion("eu-west-1"))
			default:
				if h, ps, err := net.SplitHostPort(v); err == nil {
					n, err := strconv.Atoi(ps)
					if err != nil || n < 1 || n > 65535 {
						fp.errf(q.val, "discovery endpoint %q: port %q must be 1–65535", v, ps)
					}
					if _, set := f["port"]; set {
						fp.errf(q.val, "discovery endpoint %q already has a port and port: is set too; keep one", v)
					}
					host, port = h, n
				} else {
					host = v
				}
			}
		}
	} else if d.Enabled {
		host = discovery.EndpointForIoT(c.Endpoint)
		if host == "" {
			fp.errf(p.key, "discovery: endpoint is missing and cannot be derived from connection endpoint %q (not an AWS IoT endpoint); add endpoint: greengrass-ats.iot.REGION.amazonaws.com", c.Endpoint)
		}
	}
	if host != "" {
		d.Endpoint = net.JoinHostPort(host, strconv.Itoa(port))
	}
	if d.Enabled && c.Transport != iot.TransportMQTTS && c.Transport != iot.TransportALPN {
		fp.errf(p.key, "discovery needs the device certificate (transport tls or alpn): the discovery API and the Greengrass core authenticate the device by mutual TLS, not %s", transportWord(c.Transport))
	}
	return d
}

// Describe says in one line what the agent will connect through, for
// `agent validate` and `agent plan`: "" when discovery is off.
func (d Discovery) Describe(endpoint string) string {
	if !d.Enabled {
		return ""
	}
	s := fmt.Sprintf("Greengrass discovery at %s (%d tries, %v each), then the first core address that answers; asked again when none does (at most every %v)", d.Endpoint, d.Attempts, d.Timeout, d.RediscoverInterval)
	if d.Fallback {
		return s + "; fallback: " + endpoint
	}
	return s + "; no fallback"
}
