// Package fleet simulates many devices in one process against one cloud:
// `agent fleet`. Each simulated device is a full agent (package agent, the
// same code as `agent run`) on its own fake HAL, with its own MQTT
// connection, thing, state directory and reconcile loop; only the hardware
// is simulated. A cloud-side driver changes one desired value per device
// on a schedule and checks that every change the cloud accepted was
// applied to the hardware and reported back.
//
// A full agent per device rather than a lighter loop built from shadowsync
// and reconcile: the point is to measure what a real fleet runs (the
// connection with its backoff and queue, the shadow client, the loop, the
// state file), and at 1,000 devices it fits in one process on two cores.
package fleet

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// ErrOptions is wrapped by Run's error for invalid Options.
var ErrOptions = errors.New("fleet: invalid options")

// Options configure Run.
type Options struct {
	// Devices is how many devices to simulate (≥ 1).
	Devices int
	// Duration is the measured window, after every device is ready.
	Duration time.Duration
	// ReportEvery is each device's sensor period (default 1 s).
	ReportEvery time.Duration
	// DesiredEvery is how often the driver changes each device's desired
	// value (default 10 s); the changes are spread evenly over the period.
	DesiredEvery time.Duration
	// Settle is the longest wait after the window for the last changes to
	// be applied and reported (default 10 s).
	Settle time.Duration
	// ReadyTimeout bounds the wait for every device to converge at start
	// (default 60 s).
	ReadyTimeout time.Duration

	// Endpoint is the broker's host:port; "" starts an embedded local cloud
	// (on Listen). With CertFile and KeyFile the devices and the driver use
	// mutual TLS (transport tls), as on AWS IoT.
	Endpoint                  string
	Listen                    string
	CertFile, KeyFile, CAFile string
	// ThingPrefix names the things: <prefix>0001, <prefix>0002, …
	// (default "fleet-").
	ThingPrefix string

	// BackoffBase and BackoffMax are every device's reconnect backoff
	// (defaults 500 ms and 5 s, full jitter).
	BackoffBase, BackoffMax time.Duration
	// RestartBrokerAt restarts the embedded broker this far into the window
	// (0 = never; needs the embedded cloud). Shadows are then kept on disk
	// so they survive the restart, as on AWS.
	RestartBrokerAt time.Duration
	// RestartDowntime is how long the broker stays down (default 1 s).
	RestartDowntime time.Duration

	// Out receives progress lines (nil: none).
	Out io.Writer
	// Logger receives the cloud's and the driver's warnings (nil: discard).
	Logger *slog.Logger
	// WindowEnd, when set, is called at the end of the measured window,
	// before the settle wait (a heap profile).
	WindowEnd func()
	// The clock is not injectable: the fleet measures real latencies.
}

func (o *Options) fill() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, a...))
	}
	if o.Devices < 1 {
		return bad("--devices %d: want at least 1", o.Devices)
	}
	if o.Devices > 9999 {
		return bad("--devices %d: at most 9999 in one process", o.Devices)
	}
	if o.Duration <= 0 {
		return bad("--duration %v: must be positive", o.Duration)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.ReportEvery, time.Second)
	def(&o.DesiredEvery, 10*time.Second)
	def(&o.Settle, 10*time.Second)
	def(&o.ReadyTimeout, 60*time.Second)
	def(&o.BackoffBase, 500*time.Millisecond)
	def(&o.BackoffMax, 5*time.Second)
	def(&o.RestartDowntime, time.Second)
	if o.ReportEvery < 0 || o.DesiredEvery < 0 || o.Settle < 0 || o.BackoffBase < 0 || o.BackoffMax < o.BackoffBase || o.RestartBrokerAt < 0 {
		return bad("durations must be positive and --backoff-max ≥ --backoff-base")
	}
	if o.RestartBrokerAt > 0 && o.Endpoint != "" {
		return bad("--restart-broker-at restarts the embedded broker; drop --endpoint")
	}
	if o.RestartBrokerAt >= o.Duration {
		if o.RestartBrokerAt > 0 {
			return bad("--restart-broker-at %v must fall inside --duration %v", o.RestartBrokerAt, o.Duration)
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return bad("--cert and --key go together (mutual TLS)")
	}
	if o.CertFile != "" && o.Endpoint == "" {
		return bad("--cert/--key are for a remote --endpoint; the embedded cloud listens on plain TCP")
	}
	if o.ThingPrefix == "" {
		o.ThingPrefix = "fleet-"
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
