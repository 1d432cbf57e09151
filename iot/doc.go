// Package iot is the device's MQTT connection to AWS IoT Core (or any MQTT
// 3.1.1 broker): a connection that survives anything. It is the only
// package that knows paho.mqtt.golang; the shadow client (shadowsync) and
// the rest of the agent use this API.
//
// # Transports
//
//   - TransportMQTTS: MQTT over mutual TLS, port 8883 (on port 443 the ALPN
//     protocol "x-amzn-mqtt-ca" is offered automatically, as AWS requires).
//   - TransportALPN: mutual TLS with ALPN "x-amzn-mqtt-ca" on any port.
//   - TransportWSS: MQTT over WebSocket, wss://<endpoint>/mqtt, with a SigV4
//     presigned URL (service iotdevicegateway; session token appended after
//     signing) made afresh at every (re)connect from Config.Credentials or,
//     by default, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN,
//     then ~/.aws/credentials (profile AWS_PROFILE). The wss TLS
//     configuration is separate and carries no ALPN (gorilla/websocket
//     refuses NextProtos other than http/1.1). See package iot/sigv4.
//   - TransportWS and TransportTCP: unencrypted, for local development and
//     tests only (e.g. `agent cloud`); AWS IoT accepts neither.
//
// TLS is 1.2 or newer. New checks the certificate, key and CA files and
// says what to do: a missing or unreadable file, a key that does not
// match the certificate, an expired device certificate, and a private key
// accessible by group or others (mode 0600 expected; the error includes the
// exact chmod command).
//
// # Connection lifecycle
//
// New validates the configuration (client id 1–128 bytes, keep-alive
// 30–1200 s, …) and opens the offline queue; Connect starts the connection
// loop and waits until online; Close stops it. The loop never gives up,
// also when the very first connect fails: after a failed attempt or a
// dropped connection it waits with exponential backoff (Base, doubling up
// to Max; back to Base only after a connection stayed up for Stable) with
// jitter none, full (default) or equal. Backoff is pure logic and usable
// on its own. Each attempt uses a fresh paho client with paho's own
// reconnect logic off, so the timing is exactly this package's.
//
// On every connect, all recorded subscriptions are made again (whatever the
// clean-session setting), then EventOnline is emitted, then the offline
// queue drains in order at one message per Queue.DrainInterval.
//
// # Publishing
//
// Publish takes a context and returns Sent (written for QoS 0, PUBACK for
// QoS 1) or Queued. While offline — including before the first connect —
// and while earlier queued messages are still draining, messages go to the
// bounded offline queue (DropNewest: ErrQueueFull; DropOldest: the oldest
// is discarded), kept in memory or in a bbolt file that survives restarts.
// WithoutQueue makes a time-sensitive request fail with ErrNotConnected
// instead. Nothing blocks forever: every wait is bounded by the caller's
// context and Config.OperationTimeout.
//
// # Receiving, events and state
//
// Handlers run one at a time, in arrival order, on the client's own
// dispatcher goroutine, so they may publish and wait for acknowledgements;
// if they fall behind by more than Config.MessageBuffer messages, new
// messages are dropped and counted rather than stalling the connection.
// Events delivers online/offline/connect-failed/subscribe-failed/
// queue-drained events on a buffered channel that drops its oldest entry
// when the owner does not keep up; Watch gives further consumers their own
// such channel. State and Stats (connects, failures,
// drops, queued, dropped, drained, last error) can be read at any time.
//
// # Errors
//
// Errors callers act on are sentinels (errors.Is) with typed details
// (errors.As). Mapping from the AWS IoT Device SDK for Python v1
// (AWSIoTPythonSDK.exception):
//
//	v1 exception                               this package
//	-----------------------------------------  ------------------------------------------------------------
//	connectTimeoutException                    ErrConnectTimeout (Connect; wraps the last attempt's error)
//	disconnectTimeoutException                 ErrDisconnectTimeout (Close)
//	publishTimeoutException                    ErrOperationTimeout (Publish QoS 1: no PUBACK in time)
//	subscribeTimeoutException                  ErrOperationTimeout (Subscribe: no SUBACK in time)
//	unsubscribeTimeoutException                ErrOperationTimeout (Unsubscribe: no UNSUBACK in time)
//	operationTimeoutException (base)           ErrOperationTimeout
//	connectError(rc)                           *ConnectRefusedError (ErrConnectRefused, CONNACK code),
//	                                           *TLSError (ErrTLS), or the wrapped network error
//	disconnectError                            none: Close only fails by timing out
//	publishError / subscribeError (rc 4)       ErrNotConnected (with WithoutQueue or while closing);
//	                                           otherwise the request is queued / recorded
//	subackError (SUBACK 0x80)                  *SubscribeRejectedError (ErrSubscribeRejected)
//	publishQueueFullException                  ErrQueueFull (DropNewest only; DropOldest returns
//	                                           Queued and counts the discarded message in Stats.Dropped)
//	publishQueueDisabledException              ErrQueueDisabled (also matches ErrNotConnected)
//	subscribe/unsubscribeQueueFullException,   none: subscriptions are records restored on every
//	subscribe/unsubscribeQueueDisabledExc.     connect, never queued; Subscribe offline returns nil
//	wssNoKeyInEnvironmentError                 ErrCredentials (wraps sigv4.ErrNoCredentials)
//	wssHandShakeError                          the wrapped WebSocket dial error; *TLSError for TLS
//	ClientError (endpoint not *.iot.*)         *ConfigError for "region" only if no region is known
//	                                           (custom domains work with Config.Region)
//	ValueError (bad arguments)                 *ConfigError (ErrConfig)
//	ssl.SSLError / socket.error                *TLSError, *FileError, *KeyPermissionError (ErrTLS,
//	                                           ErrConfig), ErrKeyMismatch; wrapped net errors
//	(none)                                     ErrClosed, ErrQueueStorage
//
// # v1 configuration calls
//
// configureEndpoint → Endpoint, Transport; configureCredentials →
// CAFile, CertFile, KeyFile; configureIAMCredentials → Credentials;
// configureAutoReconnectBackoffTime → Backoff; configureOfflinePublishQueueing
// → Queue.Size/Drop/Disabled; configureDrainingFrequency →
// Queue.DrainInterval; configureConnectDisconnectTimeout → ConnectTimeout,
// DisconnectTimeout; configureMQTTOperationTimeout → OperationTimeout;
// configureLastWill → Will; configureUsernamePassword → Username, Password;
// connect → Connect; disconnect → Close (a closed Client is not reused:
// create a new one); onOnline/onOffline → Events. Not provided: a socket
// factory (proxies: wss honours HTTPS_PROXY through net/http, mqtts dials
// directly), the SDK metrics username suffix, MQTT 3.1 fallback, custom
// cipher lists, and callback-style async variants (use goroutines).
package iot
