package agent

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/devices/builtin"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/shadowsync/reconcile"
)

// Agent is the daemon built from one configuration. Create it with New, run
// it with Run (once); Status, Reload and LastBeat may be called from any
// goroutine.
type Agent struct {
	deps  Deps
	log   *slog.Logger
	clock Clock

	mu      sync.Mutex
	cfg     *config.Config
	snap    Status
	statusf func() Status // live parts of the status while running
	live    *runner       // the running loop's shadows (nil when stopped)

	running atomic.Bool
	// beat is when the last loop iteration ended, with its monotonic
	// reading: liveness must not follow a stepped wall clock.
	beat    atomic.Pointer[time.Time]
	reloadc chan reloadReq
	stopped chan struct{} // closed when the loop ends (to unblock Reload)
	ready   chan struct{}
	readyMu sync.Once

	evMu      sync.Mutex
	evWaiters []func() // called at the next event (jobHost.Changed)
}

type reloadReq struct {
	cfg   *config.Config
	reply chan error
}

// New builds an agent from a validated configuration. It checks what can be
// checked without hardware or network (the driver of every device, the
// sensors' filters, the endpoint override); devices are opened by Run.
func New(cfg *config.Config, deps Deps) (*Agent, error) {
	if cfg == nil {
		return nil, fmt.Errorf("agent: no configuration")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if deps.Registry == nil {
		deps.Registry = builtin.NewRegistry()
	}
	if deps.Clock == nil {
		deps.Clock = realClock{}
	}
	if deps.Heartbeat <= 0 {
		deps.Heartbeat = time.Second
	}
	if deps.FirstGetWait == 0 {
		deps.FirstGetWait = 3 * time.Second
	}
	if deps.StopTimeout <= 0 {
		deps.StopTimeout = 5 * time.Second
	}
	if err := check(cfg, deps.Registry); err != nil {
		return nil, err
	}
	if _, err := iotConfig(cfg, deps.Endpoint); err != nil {
		return nil, err
	}
	a := &Agent{
		deps:    deps,
		log:     deps.Logger,
		clock:   deps.Clock,
		cfg:     cfg,
		reloadc: make(chan reloadReq),
		stopped: make(chan struct{}),
		ready:   make(chan struct{}),
	}
	a.snap = Status{Thing: cfg.Thing, Config: cfg.Files, StateFile: statePath(cfg)}
	a.snap.Connection.Endpoint = endpointString(cfg, deps.Endpoint)
	a.snap.Connection.State = iot.StateIdle.String()
	return a, nil
}

// check verifies what New and Reload need: known drivers and buildable
// sensor filters.
func check(cfg *config.Config, reg *devices.Registry) error {
	for _, d := range cfg.Devices {
		if _, err := reg.Lookup(d.Driver); err != nil {
			return fmt.Errorf("agent: device %q: %w", d.ID, err)
		}
	}
	spec := cfg.Spec()
	if _, err := reconcile.NewSensors(&spec, backoff()); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

func statePath(cfg *config.Config) string {
	dir := cfg.StateDir
	if dir == "" {
		dir = config.DefaultStateDir
	}
	return filepath.Join(dir, StateFile)
}

// Ready is closed after the first convergence with every shadow (the moment
// `agent run` tells systemd READY=1).
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// LastBeat is when the reconcile loop last finished an iteration (zero before
// the first). The loop iterates at least every Deps.Heartbeat while alive.
func (a *Agent) LastBeat() time.Time {
	b := a.beat.Load()
	if b == nil {
		return time.Time{}
	}
	return *b
}

// Alive reports whether the loop finished an iteration within maxAge (by the
// agent's clock): false when the loop is stuck or not running.
func (a *Agent) Alive(maxAge time.Duration) bool {
	b := a.LastBeat()
	return a.running.Load() && !b.IsZero() && a.clock.Now().Sub(b) <= maxAge
}

// Config returns the configuration in force.
func (a *Agent) Config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// Status returns a snapshot of the agent's state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	s := a.snap
	f := a.statusf
	a.mu.Unlock()
	s.Shadows = append([]ShadowStatus(nil), s.Shadows...)
	s.Keys = append([]KeyStatus(nil), s.Keys...)
	s.Sensors = append([]SensorStatus(nil), s.Sensors...)
	if f != nil {
		live := f()
		s.Connection = live.Connection
		s.Shadows = live.Shadows
		s.Jobs = live.Jobs
	}
	s.Now = a.clock.Now()
	s.Running = a.running.Load()
	s.Heartbeat = a.LastBeat()
	select {
	case <-a.ready:
		s.Ready = true
	default:
	}
	return s
}

// Reload asks the running loop to switch to cfg. It is refused (error
// wrapping ErrReloadRefused, old configuration kept) when cfg changes what
// needs a restart — thing, connection, state directory, the devices and their
// wiring — or its sensors cannot be built. When the agent is not running the
// configuration is checked and replaces the one Run will use.
func (a *Agent) Reload(cfg *config.Config) error {
	if cfg == nil {
		return fmt.Errorf("%w: no configuration", ErrReloadRefused)
	}
	if !a.running.Load() {
		if err := a.compatible(cfg); err != nil {
			return err
		}
		a.mu.Lock()
		a.cfg = cfg
		a.mu.Unlock()
		return nil
	}
	req := reloadReq{cfg: cfg, reply: make(chan error, 1)}
	select {
	case a.reloadc <- req:
		return <-req.reply
	case <-a.stopped:
		return fmt.Errorf("%w: the agent has stopped", ErrReloadRefused)
	}
}

// compatible says whether cfg may replace the configuration in force without
// a restart.
func (a *Agent) compatible(cfg *config.Config) error {
	old := a.Config()
	if err := check(cfg, a.deps.Registry); err != nil {
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	var why []string
	if cfg.Thing != old.Thing {
		why = append(why, fmt.Sprintf("thing changed from %q to %q", old.Thing, cfg.Thing))
	}
	if cfg.StateDir != old.StateDir {
		why = append(why, fmt.Sprintf("state_dir changed from %q to %q", old.StateDir, cfg.StateDir))
	}
	if fmt.Sprintf("%+v", cfg.Connection) != fmt.Sprintf("%+v", old.Connection) {
		why = append(why, "the connection settings changed")
	}
	if devicesKey(cfg) != devicesKey(old) {
		why = append(why, "the devices or their wiring changed")
	}
	if jobsKey(cfg) != jobsKey(old) {
		why = append(why, "the jobs: section changed")
	}
	if len(why) > 0 {
		return fmt.Errorf("%w: %s; restart the agent to apply this (systemctl restart pinshadow)", ErrReloadRefused, strings.Join(why, "; "))
	}
	return nil
}

func jobsKey(cfg *config.Config) string {
	if cfg.Jobs == nil {
		return "none"
	}
	j := *cfg.Jobs
	j.Pos = config.Position{}
	return fmt.Sprintf("%+v", j)
}

func devicesKey(cfg *config.Config) string {
	var b strings.Builder
	for _, d := range cfg.Devices {
		fmt.Fprintf(&b, "%s|%s|%+v\n", d.ID, d.Driver, d.Options)
	}
	return b.String()
}

func (a *Agent) emit(e Event) {
	a.evMu.Lock()
	ws := a.evWaiters
	a.evWaiters = nil
	a.evMu.Unlock()
	for _, w := range ws {
		w()
	}
	if a.deps.Events == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = a.clock.Now()
	}
	a.deps.Events(e)
}

// iotConfig builds the connection's configuration with the endpoint
// override applied.
func iotConfig(cfg *config.Config, override string) (iot.Config, error) {
	ic := cfg.Connection.IOT(nil)
	if ic.ClientID == "" {
		ic.ClientID = cfg.Thing
	}
	if override == "" {
		return ic, nil
	}
	if !strings.Contains(override, "://") {
		ic.Endpoint = override
		return ic, nil
	}
	u, err := url.Parse(override)
	if err != nil || u.Host == "" {
		return ic, fmt.Errorf("agent: endpoint override %q: want scheme://host:port, e.g. tcp://127.0.0.1:1883", override)
	}
	scheme := u.Scheme
	if scheme == "ssl" {
		scheme = "mqtts"
	}
	t, err := iot.ParseTransport(scheme)
	if err != nil {
		return ic, fmt.Errorf("agent: endpoint override %q: %w", override, err)
	}
	ic.Transport, ic.Endpoint = t, u.Host
	return ic, nil
}

func endpointString(cfg *config.Config, override string) string {
	if override != "" {
		return override
	}
	return cfg.Connection.Transport.String() + "://" + cfg.Connection.Endpoint
}

// sortedKeys returns a map's keys sorted.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
