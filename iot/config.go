package iot

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pinshadow/pinshadow/iot/sigv4"
)

// Transport selects how the client reaches the broker.
type Transport int

const (
	// TransportMQTTS is MQTT over mutual TLS, port 8883 by default. On port
	// 443 it offers ALPN "x-amzn-mqtt-ca" automatically, as AWS requires.
	TransportMQTTS Transport = iota
	// TransportALPN is MQTT over mutual TLS with ALPN "x-amzn-mqtt-ca" on any
	// port (443 by default).
	TransportALPN
	// TransportWSS is MQTT over WebSocket over TLS (wss://host/mqtt, port 443
	// by default) authenticated with a SigV4-presigned URL, signed afresh at
	// every (re)connect.
	TransportWSS
	// TransportWS is MQTT over plain WebSocket with the SigV4 query. For
	// local development and tests only: nothing is encrypted.
	TransportWS
	// TransportTCP is plain MQTT over TCP (port 1883 by default). For local
	// development only (e.g. `agent cloud`): nothing is encrypted or
	// authenticated by certificate; AWS IoT does not accept it.
	TransportTCP
)

// ALPNProtocol is the ALPN protocol AWS IoT requires for MQTT with X.509
// client certificates on port 443.
const ALPNProtocol = "x-amzn-mqtt-ca"

// String returns the transport's configuration name.
func (t Transport) String() string {
	switch t {
	case TransportMQTTS:
		return "mqtts"
	case TransportALPN:
		return "alpn"
	case TransportWSS:
		return "wss"
	case TransportWS:
		return "ws"
	case TransportTCP:
		return "tcp"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// ParseTransport parses "mqtts" (also "tls", ""), "alpn", "wss", "ws" or "tcp".
func ParseTransport(s string) (Transport, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "mqtts", "tls":
		return TransportMQTTS, nil
	case "alpn":
		return TransportALPN, nil
	case "wss", "websocket":
		return TransportWSS, nil
	case "ws":
		return TransportWS, nil
	case "tcp":
		return TransportTCP, nil
	}
	return 0, &ConfigError{Field: "transport", Value: s, Reason: `must be one of mqtts, alpn, wss, ws (local tests only), tcp (local development only)`}
}

func (t Transport) defaultPort() int {
	switch t {
	case TransportMQTTS:
		return 8883
	case TransportTCP:
		return 1883
	case TransportWS:
		return 80
	}
	return 443
}

func (t Transport) usesCertificates() bool { return t == TransportMQTTS || t == TransportALPN }
func (t Transport) usesSigV4() bool        { return t == TransportWSS || t == TransportWS }

// QoS is an MQTT quality of service level. AWS IoT supports 0 and 1.
type QoS byte

// QoS levels.
const (
	QoS0 QoS = 0 // at most once
	QoS1 QoS = 1 // at least once (PUBACK awaited)
)

// DropPolicy decides what a full offline queue discards.
type DropPolicy int

const (
	// DropNewest rejects the new message with ErrQueueFull (the default).
	DropNewest DropPolicy = iota
	// DropOldest discards the oldest queued message to make room.
	DropOldest
)

// String returns "newest" or "oldest".
func (d DropPolicy) String() string {
	if d == DropOldest {
		return "oldest"
	}
	return "newest"
}

// QueueConfig configures the offline publish queue, used whenever the
// client is not online (including before the first connect) and while
// queued messages are still draining.
type QueueConfig struct {
	// Disabled turns the queue off: publishing while offline fails with
	// ErrQueueDisabled (the v1 SDK's shadow-client behaviour).
	Disabled bool
	// Size is the maximum number of queued messages; 0 means 100.
	Size int
	// Drop is what a full queue discards; default DropNewest.
	Drop DropPolicy
	// Path, if set, keeps the queue in this bbolt file so it survives a
	// restart; "" keeps it in memory.
	Path string
	// DrainInterval is the pause between two queued messages sent after a
	// reconnect (the drain rate); 0 means 100 ms (10 messages/s, well under
	// AWS's 100 publishes/s per connection).
	DrainInterval time.Duration
}

// Will is the MQTT last-will message the broker publishes if the client
// disappears without disconnecting.
type Will struct {
	Topic   string
	Payload []byte
	QoS     QoS
	Retain  bool
}

// Config configures a Client. Zero values mean the documented defaults.
type Config struct {
	// Endpoint is "host" or "host:port"; the port defaults per transport
	// (8883 mqtts, 443 alpn/wss, 1883 tcp).
	Endpoint  string
	Transport Transport
	// ClientID identifies the device (usually the thing name): 1–128 bytes.
	ClientID string

	// CertFile and KeyFile are the device certificate and private key (PEM)
	// for mqtts/alpn. The key must not be accessible by group or others.
	CertFile string
	KeyFile  string
	// CAFile holds the CA certificates (PEM) the broker's certificate must
	// chain to, e.g. AmazonRootCA1.pem; "" uses the system roots.
	CAFile string
	// ServerName overrides the name the broker certificate is verified
	// against (default: the endpoint host).
	ServerName string
	// Router, if set, chooses where each connection attempt goes (mqtts
	// and alpn only). Endpoint must still be a valid host:port: it names
	// the client until the first attempt.
	Router Router

	// Credentials supply AWS keys for wss/ws; nil means the environment
	// variables, then ~/.aws/credentials (sigv4.Default).
	Credentials sigv4.Provider
	// Region for SigV4; "" means AWS_REGION / AWS_DEFAULT_REGION, then the
	// region in an "*.iot.<region>.amazonaws.com" endpoint.
	Region string
	// Getenv looks environment variables up for Region and the default
	// credentials; nil means os.Getenv.
	Getenv func(string) string

	// Username and Password go into CONNECT (custom authorizers, other
	// brokers). Password is only sent with a username.
	Username string
	Password string
	// Will is the last-will message; nil sends none.
	Will *Will
	// PersistentSession connects with CleanSession=false so the broker
	// keeps subscriptions and queued QoS 1 messages while the device is
	// away (AWS IoT: up to 1 hour by default). The default is a clean
	// session, like the v1 SDK. Subscriptions are restored on every
	// reconnect either way.
	PersistentSession bool
	// KeepAlive is the MQTT keep-alive, 30 s–1200 s (AWS IoT's range);
	// default 60 s.
	KeepAlive time.Duration

	// ConnectTimeout bounds one connection attempt (dial, TLS, CONNACK) and
	// how long Connect waits when its context has no earlier deadline;
	// default 15 s.
	ConnectTimeout time.Duration
	// DisconnectTimeout bounds the graceful DISCONNECT in Close; default 5 s.
	DisconnectTimeout time.Duration
	// OperationTimeout bounds the wait for PUBACK/SUBACK/UNSUBACK; default 5 s.
	OperationTimeout time.Duration

	Backoff BackoffConfig
	Queue   QueueConfig

	// EventBuffer is the capacity of the Events channel; when full the
	// oldest event is dropped (counted in Stats). Default 64.
	EventBuffer int
	// MessageBuffer is how many received messages may wait for the
	// handlers; beyond that new messages are dropped and counted, so a slow
	// handler never stalls the connection. Default 1024.
	MessageBuffer int
}

// clientIDMax is AWS IoT's client id limit in bytes.
const clientIDMax = 128

func (c Config) withDefaults() Config {
	if c.KeepAlive == 0 {
		c.KeepAlive = 60 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 15 * time.Second
	}
	if c.DisconnectTimeout == 0 {
		c.DisconnectTimeout = 5 * time.Second
	}
	if c.OperationTimeout == 0 {
		c.OperationTimeout = 5 * time.Second
	}
	if c.Queue.Size == 0 {
		c.Queue.Size = 100
	}
	if c.Queue.DrainInterval == 0 {
		c.Queue.DrainInterval = 100 * time.Millisecond
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = 64
	}
	if c.MessageBuffer == 0 {
		c.MessageBuffer = 1024
	}
	c.Backoff = c.Backoff.withDefaults()
	return c
}

// hostPort splits Endpoint and applies the transport's default port.
func (c Config) hostPort() (host string, port int, err error) {
	ep := strings.TrimSpace(c.Endpoint)
	if ep == "" {
		return "", 0, &ConfigError{Field: "endpoint", Value: ep, Reason: "is required, e.g. abc123-ats.iot.eu-west-1.amazonaws.com"}
	}
	if strings.Contains(ep, "://") {
		return "", 0, &ConfigError{Field: "endpoint", Value: ep, Reason: "must be host or host:port without a scheme; choose the protocol with transport"}
	}
	h, p, splitErr := net.SplitHostPort(ep)
	if splitErr != nil {
		return ep, c.Transport.defaultPort(), nil
	}
	n, convErr := strconv.Atoi(p)
	if convErr != nil || n < 1 || n > 65535 {
		return "", 0, &ConfigError{Field: "endpoint", Value: ep, Reason: "port must be 1–65535"}
	}
	return h, n, nil
}

func (c Config) validate() error {
	if _, _, err := c.hostPort(); err != nil {
		return err
	}
	if c.Transport < TransportMQTTS || c.Transport > TransportTCP {
		return &ConfigError{Field: "transport", Value: c.Transport.String(), Reason: "unknown transport"}
	}
	if c.Router != nil && !c.Transport.usesCertificates() {
		return &ConfigError{Field: "transport", Value: c.Transport.String(), Reason: "a Router needs mutual TLS (mqtts or alpn)"}
	}
	if c.ClientID == "" {
		return &ConfigError{Field: "client_id", Value: "", Reason: "is required (AWS IoT policies usually require the thing name)"}
	}
	if len(c.ClientID) > clientIDMax {
		return &ConfigError{Field: "client_id", Value: c.ClientID, Reason: fmt.Sprintf("is %d bytes; AWS IoT allows at most %d", len(c.ClientID), clientIDMax)}
	}
	if !utf8.ValidString(c.ClientID) {
		return &ConfigError{Field: "client_id", Value: c.ClientID, Reason: "must be valid UTF-8"}
	}
	if c.KeepAlive < 30*time.Second || c.KeepAlive > 1200*time.Second {
		return &ConfigError{Field: "keep_alive", Value: c.KeepAlive.String(), Reason: "must be between 30s and 20m (AWS IoT's range)"}
	}
	if c.KeepAlive%time.Second != 0 {
		return &ConfigError{Field: "keep_alive", Value: c.KeepAlive.String(), Reason: "must be whole seconds"}
	}
	for name, d := range map[string]time.Duration{"connect_timeout": c.ConnectTimeout, "disconnect_timeout": c.DisconnectTimeout, "operation_timeout": c.OperationTimeout, "queue.drain_interval": c.Queue.DrainInterval} {
		if d < 0 {
			return &ConfigError{Field: name, Value: d.String(), Reason: "must be positive"}
		}
	}
	if c.Queue.Size < 0 {
		return &ConfigError{Field: "queue.size", Value: strconv.Itoa(c.Queue.Size), Reason: "must be positive (set queue.disabled to turn the queue off)"}
	}
	if c.Queue.Drop != DropNewest && c.Queue.Drop != DropOldest {
		return &ConfigError{Field: "queue.drop", Value: c.Queue.Drop.String(), Reason: `must be "newest" or "oldest"`}
	}
	if c.EventBuffer < 0 || c.MessageBuffer < 0 {
		return &ConfigError{Field: "event_buffer/message_buffer", Value: fmt.Sprint(c.EventBuffer, c.MessageBuffer), Reason: "must be positive"}
	}
	if w := c.Will; w != nil {
		if w.Topic == "" || strings.ContainsAny(w.Topic, "+#") {
			return &ConfigError{Field: "will.topic", Value: w.Topic, Reason: "must be a non-empty topic without wildcards"}
		}
		if w.QoS > QoS1 {
			return &ConfigError{Field: "will.qos", Value: strconv.Itoa(int(w.QoS)), Reason: "must be 0 or 1"}
		}
	}
	if c.Password != "" && c.Username == "" {
		return &ConfigError{Field: "password", Value: "***", Reason: "needs a username (MQTT 3.1.1 sends a password only with a username)"}
	}
	if c.Transport.usesCertificates() && (c.CertFile == "") != (c.KeyFile == "") {
		return &ConfigError{Field: "cert/key", Value: c.CertFile + " / " + c.KeyFile, Reason: "give both the certificate and the private key file, or neither"}
	}
	if err := c.Backoff.validate(); err != nil {
		return err
	}
	return nil
}

// validateTopic checks a publish topic (no wildcards, not empty).
func validateTopic(topic string) error {
	if topic == "" || strings.ContainsAny(topic, "+#") || !utf8.ValidString(topic) {
		return &ConfigError{Field: "topic", Value: topic, Reason: "must be a non-empty UTF-8 topic without wildcards"}
	}
	return nil
}

// validateFilter checks a subscription filter.
func validateFilter(filter string) error {
	if filter == "" || !utf8.ValidString(filter) {
		return &ConfigError{Field: "filter", Value: filter, Reason: "must be a non-empty UTF-8 topic filter"}
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return &ConfigError{Field: "filter", Value: filter, Reason: `"#" must be a whole last level`}
		}
		if strings.Contains(l, "+") && l != "+" {
			return &ConfigError{Field: "filter", Value: filter, Reason: `"+" must be a whole level`}
		}
	}
	return nil
}

// topicMatches reports whether topic matches the MQTT filter.
func topicMatches(filter, topic string) bool {
	f := strings.Split(filter, "/")
	t := strings.Split(topic, "/")
	// Wildcards at the first level never match topics starting with "$".
	if len(t) > 0 && strings.HasPrefix(t[0], "$") && len(f) > 0 && (f[0] == "+" || f[0] == "#") {
		return false
	}
	for i, fl := range f {
		if fl == "#" {
			return true
		}
		if i >= len(t) {
			return false
		}
		if fl != "+" && fl != t[i] {
			return false
		}
	}
	return len(f) == len(t)
}
