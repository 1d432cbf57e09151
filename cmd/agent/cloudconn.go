package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/pinshadow/pinshadow/iot"
)

// cloudFlags are the connection flags of the commands that talk to the
// cloud side as an application does (`agent shadow`, `agent jobs`).
type cloudFlags struct {
	endpoint, cert, key, ca, clientID *string
	timeout                           *time.Duration
	prefix                            string // default client ID prefix
}

// addCloudFlags registers --endpoint, --cert, --key, --ca, --timeout and
// --client-id on fs; prefix names the default client ID (prefix-<random>).
func addCloudFlags(fs *flag.FlagSet, prefix string) *cloudFlags {
	return &cloudFlags{
		prefix:   prefix,
		endpoint: fs.String("endpoint", "", "MQTT endpoint HOST:PORT, e.g. 127.0.0.1:1883 for 'agent cloud' (required)"),
		cert:     fs.String("cert", "", "client certificate (PEM) for mutual TLS; without --cert/--key the connection is plain TCP (local development only)"),
		key:      fs.String("key", "", "private key (PEM) of --cert"),
		ca:       fs.String("ca", "", "CA certificates (PEM) the endpoint's certificate must chain to (default: system roots)"),
		timeout:  fs.Duration("timeout", 10*time.Second, "how long to wait for the connection and for each reply"),
		clientID: fs.String("client-id", "", "MQTT client ID (default "+prefix+"-<random>; AWS IoT policies often require a specific one)"),
	}
}

// check refuses incomplete connection flags (a usage error).
func (c *cloudFlags) check() error {
	if *c.endpoint == "" {
		return fmt.Errorf("%w: --endpoint is required", errUsage)
	}
	if (*c.cert == "") != (*c.key == "") {
		return fmt.Errorf("%w: --cert and --key go together (mutual TLS)", errUsage)
	}
	if *c.timeout <= 0 {
		return fmt.Errorf("%w: --timeout %v: must be positive", errUsage, *c.timeout)
	}
	return nil
}

// dial connects with the flags' settings, within the timeout. The returned
// close function disconnects (bounded) and must be called. An endpoint that
// cannot be reached is exit status 4.
func (c *cloudFlags) dial(ctx context.Context) (*iot.Client, func(), error) {
	id := *c.clientID
	if id == "" {
		id = c.prefix + "-" + randomHex(6)
	}
	cfg := iot.Config{
		Endpoint: *c.endpoint, Transport: iot.TransportTCP, ClientID: id,
		ConnectTimeout: *c.timeout, OperationTimeout: *c.timeout,
		Queue: iot.QueueConfig{Disabled: true},
	}
	if *c.cert != "" {
		cfg.Transport, cfg.CertFile, cfg.KeyFile, cfg.CAFile = iot.TransportMQTTS, *c.cert, *c.key, *c.ca
	}
	conn, err := iot.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	closeConn := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		conn.Close(cctx)
	}
	cctx, cancel := context.WithTimeout(ctx, *c.timeout)
	defer cancel()
	if err := conn.Connect(cctx); err != nil {
		closeConn()
		return nil, nil, &exitError{code: exitUnreachable, err: fmt.Errorf("cannot reach %s: %w", *c.endpoint, err)}
	}
	return conn, closeConn, nil
}
