package fleet

import (
	"context"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/hal/fake/chips"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// deviceYAML is every simulated device's configuration: a PWM dimmer the
// cloud drives (desired "level") and a temperature sensor reported every
// ReportEvery.
const deviceYAML = `thing: %[1]s
board: pi4b
state_dir: %[2]s
connection:
  endpoint: %[3]s
  port: %[4]s
  transport: %[5]s
%[6]s  backoff: {base: %[7]s, max: %[8]s, stable: 10s, jitter: full}
  queue: {size: 100}
devices:
  - {id: lamp, driver: pwm, channel: GPIO18}
  - {id: air, driver: sht3x, bus: 1, address: 0x44, repeatability: low}
shadows:
  - desired:
      level: {device: lamp, unit: "%%", range: [0, 100], boot: 0}
    reported:
      temperature: {device: air, property: temperature, update_interval: %[9]s}
`

// DesiredKey is the desired key the driver changes on every device.
const DesiredKey = "level"

// drift is an SHT3x whose temperature moves by a step on every command, so
// each read differs from the last and is reported (an unchanged reading
// would be coalesced away, and the fleet is meant to report every period).
type drift struct {
	*chips.SHT3x
	mu sync.Mutex
	n  int
}

func (d *drift) Tx(w, r []byte) error {
	if len(w) == 2 {
		d.mu.Lock()
		d.n++
		d.SHT3x.SetTemperature(20 + float64(d.n%40)*0.25)
		d.mu.Unlock()
	}
	return d.SHT3x.Tx(w, r)
}

// write is one desired value the device's hardware received.
type write struct {
	value float64
	at    time.Time
	agent time.Duration // the agent's own delta → write latency
}

// device is one simulated device and what the fleet learned about it.
type device struct {
	idx   int
	thing string
	ag    *agent.Agent
	hal   *fake.HAL

	mu       sync.Mutex
	onlines  []time.Time
	offlines []time.Time
	writes   []write
	ready    time.Time
	sensorEr int
	// updates counts the device's shadow updates the cloud accepted (its
	// reports), through shadowsync's request observer.
	updates atomic.Int64
}

// RequestStarted implements shadowsync.RequestObserver.
func (d *device) RequestStarted(string) {}

// RequestDone implements shadowsync.RequestObserver.
func (d *device) RequestDone(op string, code int, _ time.Duration) {
	if op == "update" && code == 200 {
		d.updates.Add(1)
	}
}

func (d *device) event(e agent.Event) {
	switch e.Kind {
	case agent.EventOnline:
		d.mu.Lock()
		d.onlines = append(d.onlines, time.Now())
		d.mu.Unlock()
	case agent.EventOffline:
		d.mu.Lock()
		d.offlines = append(d.offlines, time.Now())
		d.mu.Unlock()
	case agent.EventWrite:
		if e.Key != DesiredKey || e.Message != "desired" {
			return
		}
		v, ok := e.Value.(float64)
		if !ok {
			return
		}
		d.mu.Lock()
		d.writes = append(d.writes, write{value: v, at: time.Now(), agent: e.Latency})
		d.mu.Unlock()
	case agent.EventReady:
		d.mu.Lock()
		d.ready = time.Now()
		d.mu.Unlock()
	case agent.EventSensorError:
		d.mu.Lock()
		d.sensorEr++
		d.mu.Unlock()
	}
}

// reconnectAfter returns when the device came back after losing its
// connection at or after t: its first connection after its first
// disconnection since t. (The broker can accept a device while a restart
// is still finishing, before the caller's "broker up" time: the first
// connection after t alone would miss it.)
func (d *device) reconnectAfter(t time.Time) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, off := range d.offlines {
		if off.Before(t) {
			continue
		}
		for _, on := range d.onlines {
			if !on.Before(off) {
				return on, true
			}
		}
		break
	}
	return time.Time{}, false
}

// firstOnlineAfter returns the first connection at or after t.
func (d *device) firstOnlineAfter(t time.Time) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.onlines {
		if !o.Before(t) {
			return o, true
		}
	}
	return time.Time{}, false
}

// wroteAfter returns the first write of v at or after t.
func (d *device) wroteAfter(v float64, t time.Time) (write, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.writes {
		if !w.at.Before(t) && math.Abs(w.value-v) < 1e-9 {
			return w, true
		}
	}
	return write{}, false
}

// newDevice builds device idx's agent on a fake HAL; Run starts it.
func newDevice(o *Options, idx int, root, host, port string) (*device, error) {
	d := &device{idx: idx, thing: fmt.Sprintf("%s%04d", o.ThingPrefix, idx+1)}
	dir := filepath.Join(root, d.thing)
	transport, tlsLines := "tcp", ""
	if o.CertFile != "" {
		transport = "tls"
		tlsLines = fmt.Sprintf("  cert: %s\n  key: %s\n", strconv.Quote(o.CertFile), strconv.Quote(o.KeyFile))
		if o.CAFile != "" {
			tlsLines += fmt.Sprintf("  ca: %s\n", strconv.Quote(o.CAFile))
		}
	}
	yaml := fmt.Sprintf(deviceYAML, d.thing, strconv.Quote(dir), host, port, transport, tlsLines,
		o.BackoffBase, o.BackoffMax, o.ReportEvery)
	cfg, err := config.Parse(d.thing+".yaml", config.Options{
		ReadFile:  func(string) ([]byte, error) { return []byte(yaml), nil },
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: device %s configuration: %w", d.thing, err)
	}
	d.hal = fake.New(fake.WithLogLimit(32), fake.WithSeed(uint64(idx+1)))
	d.hal.Bus("1").Attach(0x44, &drift{SHT3x: chips.NewSHT3x()})
	// FirstGetWait -1: open the outputs at their boot values at once
	// instead of waiting up to 3 s for the first get; with a thousand
	// devices starting together that wait only stretches the start-up,
	// and the steady state is the same.
	d.ag, err = agent.New(cfg, agent.Deps{HAL: d.hal, Events: d.event, StopTimeout: 2 * time.Second,
		FirstGetWait: -1, Shadow: shadowsync.Options{Timeout: 10 * time.Second, Observer: d}})
	if err != nil {
		return nil, fmt.Errorf("fleet: device %s: %w", d.thing, err)
	}
	return d, nil
}

// splitEndpoint splits host:port (a tcp:// or mqtts:// prefix is allowed).
func splitEndpoint(ep string) (string, string, error) {
	for _, p := range []string{"tcp://", "mqtt://", "mqtts://", "tls://", "ssl://"} {
		if len(ep) > len(p) && ep[:len(p)] == p {
			ep = ep[len(p):]
		}
	}
	h, p, err := net.SplitHostPort(ep)
	if err != nil {
		return "", "", fmt.Errorf("%w: --endpoint %q: want HOST:PORT", ErrOptions, ep)
	}
	return h, p, nil
}

// run runs the device's agent until ctx ends.
func (d *device) run(ctx context.Context) error {
	defer d.hal.Close()
	return d.ag.Run(ctx)
}
