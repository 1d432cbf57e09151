package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/pinshadow/pinshadow/fleet"
)

// runFleet is `agent fleet`: many simulated devices in one process.
func runFleet(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "fleet", "--devices N [--duration D] [--endpoint HOST:PORT [--cert F --key F --ca F]] [--restart-broker-at D] [flags]")
	var o fleet.Options
	fs.IntVar(&o.Devices, "devices", 100, "number of simulated devices (each a full agent with its own MQTT connection and thing)")
	fs.DurationVar(&o.Duration, "duration", 60*time.Second, "measured window, after every device is ready")
	fs.DurationVar(&o.ReportEvery, "report-every", time.Second, "each device's sensor reporting period")
	fs.DurationVar(&o.DesiredEvery, "desired-every", 10*time.Second, "how often the cloud-side driver changes each device's desired value (spread evenly)")
	fs.DurationVar(&o.Settle, "settle", 10*time.Second, "longest wait after the window for the last changes to be applied and reported")
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", 60*time.Second, "longest wait for every device to converge at start")
	fs.StringVar(&o.Endpoint, "endpoint", "", "broker HOST:PORT: 'agent cloud', mosquitto with 'agent cloud --broker' attached, or AWS IoT (default: an embedded local cloud)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:0", "listen address of the embedded cloud")
	fs.StringVar(&o.CertFile, "cert", "", "device certificate (PEM) for mutual TLS with --endpoint (every simulated device uses it)")
	fs.StringVar(&o.KeyFile, "key", "", "private key (PEM) of --cert")
	fs.StringVar(&o.CAFile, "ca", "", "CA certificates (PEM) the endpoint's certificate must chain to (default: system roots)")
	fs.StringVar(&o.ThingPrefix, "thing-prefix", "fleet-", "thing names are PREFIX0001, PREFIX0002, …")
	fs.DurationVar(&o.BackoffBase, "backoff-base", 500*time.Millisecond, "devices' first reconnect wait")
	fs.DurationVar(&o.BackoffMax, "backoff-max", 5*time.Second, "devices' longest reconnect wait (full jitter)")
	fs.DurationVar(&o.RestartBrokerAt, "restart-broker-at", 0, "restart the embedded broker this far into the window and report the reconnects (0 = no restart)")
	fs.DurationVar(&o.RestartDowntime, "restart-downtime", time.Second, "how long the broker stays down on --restart-broker-at")
	profile := fs.String("profile", "", "write a CPU profile of the run to `PREFIX`.cpu.pprof and a heap profile at the end of the window to PREFIX.heap.pprof (go tool pprof)")
	logLevel := fs.String("log-level", "error", "log level of the cloud and devices' warnings: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, *logLevel)
	}
	o.Out = e.stdout
	o.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	fmt.Fprintf(e.stdout, "agent fleet: %d devices, GOMAXPROCS %d, %s/%s\n", o.Devices, runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	if *profile != "" {
		f, err := os.Create(*profile + ".cpu.pprof")
		if err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--profile: %w", err)
		}
		defer pprof.StopCPUProfile()
		o.WindowEnd = func() {
			if h, err := os.Create(*profile + ".heap.pprof"); err == nil {
				_ = pprof.WriteHeapProfile(h)
				h.Close()
			}
		}
	}
	rep, err := fleet.Run(ctx, o)
	if err != nil {
		if errors.Is(err, fleet.ErrOptions) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return err
	}
	rep.Print(e.stdout)
	if n := rep.Lost(); n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d desired change(s) the cloud accepted were not applied and reported", n)}
	}
	if rr := rep.Restart; rr != nil && rr.NotReconnected > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d device(s) did not reconnect after the broker restart", rr.NotReconnected)}
	}
	return nil
}
