package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/localcloud"
	"github.com/pinshadow/pinshadow/localcloud/shadow"
	"github.com/pinshadow/pinshadow/metrics"
)

// runCloud runs the local AWS IoT cloud until ctx is cancelled (SIGINT or
// SIGTERM in main).
func runCloud(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "cloud", "[--listen ADDR] [--tls-listen ADDR --tls-cert F --tls-key F --client-ca F] [--ws-listen ADDR] [--discovery-listen ADDR] [--broker URL] [--data DIR] [flags]")
	d := localcloud.DefaultOptions()
	o := d
	fs.StringVar(&o.Listen, "listen", d.Listen, "plain MQTT listen address ('' = none)")
	fs.StringVar(&o.TLSListen, "tls-listen", "", "MQTT over mutual TLS listen address, e.g. 127.0.0.1:8883")
	fs.StringVar(&o.TLSCertFile, "tls-cert", "", "server certificate (PEM) for --tls-listen")
	fs.StringVar(&o.TLSKeyFile, "tls-key", "", "server private key (PEM) for --tls-listen")
	fs.StringVar(&o.ClientCAFile, "client-ca", "", "CA (PEM) client certificates must chain to on --tls-listen")
	fs.StringVar(&o.WSListen, "ws-listen", "", "MQTT over WebSocket listen address (any path, subprotocol mqtt)")
	fs.StringVar(&o.DiscoveryListen, "discovery-listen", "", "Greengrass discovery (HTTPS, mutual TLS) listen address, e.g. 127.0.0.1:8443; needs --tls-listen, whose host:port it advertises as the core's")
	discoveryHosts := fs.String("discovery-host", "", "comma-separated host names/IPs advertised as the core's connectivity entries, in order (default: the --tls-listen host; they must be in the server certificate)")
	fs.StringVar(&o.DiscoveryCAFile, "discovery-ca", "", "group CA (PEM) advertised by discovery: the CA that signed --tls-cert (default: --client-ca)")
	fs.StringVar(&o.Broker, "broker", "", "attach the shadow service to this external broker URL (tcp://host:port) instead of embedding one; disables the listeners")
	fs.StringVar(&o.BrokerClientID, "broker-client-id", d.BrokerClientID, "MQTT client ID used with --broker")
	fs.StringVar(&o.DataDir, "data", "", "store shadows durably in DIR/"+localcloud.DBFile+" (default: in memory)")
	fs.Float64Var(&o.RatePerThing, "rate", d.RatePerThing, "requests per second allowed per thing; more get 429 (0 = off)")
	fs.IntVar(&o.RateBurst, "rate-burst", d.RateBurst, "burst size of the per-thing rate limit")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", d.MaxInFlight, "queued/unanswered requests allowed per connection; more get 429 (0 = off)")
	fs.IntVar(&o.Shards, "shards", 0, "shadow worker count (0 = 2×CPUs, at least 4)")
	fs.IntVar(&o.Engine.Limits.MaxDocumentBytes, "max-doc-bytes", d.Engine.Limits.MaxDocumentBytes, "shadow document size limit in bytes of desired+reported; larger → 413")
	fs.IntVar(&o.Engine.Limits.MaxDepth, "max-depth", d.Engine.Limits.MaxDepth, "nesting levels allowed under desired/reported; deeper → 400")
	fs.IntVar(&o.Engine.Limits.MaxClientTokenBytes, "max-client-token", d.Engine.Limits.MaxClientTokenBytes, "clientToken length limit in bytes; longer → 400")
	recreate := fs.String("recreate", "skip-one", "version of a shadow re-created after a delete at version N: skip-one (N+2, like AWS), next (N+1) or reset (1)")
	fs.DurationVar(&o.Engine.ForgetDeletedAfter, "forget-after", d.Engine.ForgetDeletedAfter, "a shadow re-created this long after its deletion starts again at version 1 (0 = never)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	metricsAddr := fs.String("metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9101 (default: off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, h := range strings.Split(*discoveryHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			o.DiscoveryHosts = append(o.DiscoveryHosts, h)
		}
	}
	var err error
	if o.Engine.Recreate, err = parseRecreate(*recreate); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, *logLevel)
	}
	// A broker URL replaces the default listener unless one was asked for.
	if o.Broker != "" && !flagSet(fs, "listen") {
		o.Listen = ""
	}
	o.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	var reg *metrics.Registry
	var mln net.Listener
	if *metricsAddr != "" {
		reg = metrics.NewRegistry()
		metrics.RegisterProcess(reg)
		o.Metrics = localcloud.NewMetrics(reg)
		if mln, err = metrics.Listen(*metricsAddr); err != nil {
			return err
		}
		defer mln.Close()
	}

	start := time.Now()
	srv, err := localcloud.New(o)
	if err != nil {
		if errors.Is(err, localcloud.ErrOptions) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return err
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return err
	}
	for _, ep := range srv.Endpoints() {
		fmt.Fprintf(e.stdout, "%s listening on %s\n", ep.Name, ep.Addr)
	}
	if o.Broker != "" {
		fmt.Fprintf(e.stdout, "attached to broker %s\n", o.Broker)
	}
	if reg != nil {
		fmt.Fprintf(e.stdout, "metrics on http://%s/metrics\n", mln.Addr())
		mctx, stopMetrics := context.WithCancel(ctx)
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := reg.Serve(mctx, mln); err != nil {
				o.Logger.Error("metrics endpoint stopped", "err", err)
			}
		}()
		defer func() { stopMetrics(); <-served }()
	}
	o.Logger.Info("local cloud ready", "shadows_loaded", srv.Loaded(), "jobs_loaded", srv.LoadedJobs(), "data", o.DataDir, "startup", time.Since(start).Round(time.Millisecond))
	select {
	case <-ctx.Done():
		o.Logger.Info("shutting down")
	case <-srv.Failed():
	}
	cerr := srv.Close()
	if err := srv.Err(); err != nil {
		return err
	}
	return cerr
}

func parseRecreate(s string) (shadow.RecreatePolicy, error) {
	switch strings.ToLower(s) {
	case "skip-one":
		return shadow.RecreateSkipOne, nil
	case "next":
		return shadow.RecreateNext, nil
	case "reset":
		return shadow.RecreateReset, nil
	}
	return 0, fmt.Errorf("%w: --recreate %q: want skip-one, next or reset", errUsage, s)
}

// flagSet reports whether the flag called name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}
