package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/agent/jobrun"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/filter"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/periph"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/jobs"
	"github.com/pinshadow/pinshadow/shadowsync"
	"github.com/pinshadow/pinshadow/shadowsync/reconcile"
)

func backoff() filter.Backoff { return filter.Backoff{} }

// mustJSON renders v for comparisons (map keys sorted by encoding/json).
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// runner is the state of one Run: owned by the loop goroutine, except what
// is marked otherwise.
type runner struct {
	a   *Agent
	cfg *config.Config

	spec    reconcile.Spec
	sensors *reconcile.Sensors

	hal     hal.HAL
	ownHAL  bool
	buses   *devices.SharedBuses
	env     devices.Env
	devs    map[string]devices.Device
	props   map[reconcile.Output]devices.Property
	state   reconcile.State
	obs     map[reconcile.Output]devices.Value
	wake    time.Time
	beatAt  time.Time // the next heartbeat iteration
	saved   []byte
	stateOK bool

	ic      *iot.Client
	via     string // what ic connects to (the endpoint, or a Greengrass core)
	sc      *shadowsync.Client
	shadows map[string]*shadowsync.Shadow
	events  <-chan iot.Event
	stopEv  func()

	online       bool
	offlineSince time.Time
	failsafes    []time.Duration

	kick    chan string    // a shadow's delta or get completed (shadow name)
	watchc  chan watchMsg  // button/PIR readings
	patchc  chan patchDone // on_reject desired patches finished
	telec   chan reconcile.Telemetry
	patchIn map[string]bool

	deltaAt     map[string]time.Time // when the last delta per shadow arrived
	sentOutcome map[string]string    // last Outcome patch sent per shadow, with the mirror version
	seen        map[string]int64     // mirror version last planned per shadow (-1: unknown)
	converged   bool

	keys    map[string]*KeyStatus
	sens    map[string]*SensorStatus
	lastErr string
	lastAt  time.Time

	jobsClient *jobs.Client   // nil without a jobs: section
	jobRunner  *jobrun.Runner // set before the status can read it
	jobsDone   chan struct{}  // closed when the job runner has returned
	jobsCancel context.CancelCauseFunc

	wctx   context.Context // the runner's goroutines' context
	wg     sync.WaitGroup  // goroutines the runner owns
	cancel context.CancelFunc
}

type watchMsg struct {
	device string
	r      devices.Readings
	err    error
}

type patchDone struct {
	shadow string
	err    error
}

// Run runs the agent until ctx is done: it opens the devices, applies boot or
// restored values, connects (retrying for ever), converges with every shadow
// and then keeps the hardware and the shadows in step. When ctx ends it sends
// a final report and disconnects cleanly (bounded by Deps.StopTimeout), unless
// ctx's cause is ErrHardStop. It returns nil after a normal stop, or the error
// that made starting impossible (a HAL that cannot be created, an invalid
// connection configuration).
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(a.stopped)
	defer a.running.Store(false)
	r := &runner{
		a:           a,
		cfg:         a.Config(),
		kick:        make(chan string, 16),
		watchc:      make(chan watchMsg, 16),
		patchc:      make(chan patchDone, 4),
		telec:       make(chan reconcile.Telemetry, 256),
		patchIn:     map[string]bool{},
		deltaAt:     map[string]time.Time{},
		sentOutcome: map[string]string{},
		seen:        map[string]int64{},
		keys:        map[string]*KeyStatus{},
		sens:        map[string]*SensorStatus{},
		devs:        map[string]devices.Device{},
		stateOK:     true,
	}
	ictx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.wctx = cancel, ictx
	defer cancel()
	err := r.start(ctx, ictx)
	if err == nil {
		r.loop(ctx, ictx)
	}
	r.stop(ctx)
	a.emit(Event{Kind: EventStopped})
	if errors.Is(err, errStopping) {
		return nil // asked to stop while starting: a normal stop
	}
	return err
}

// errStopping ends start when ctx ends part-way: what failed then failed
// because of the stop (an open cancelled), not because of the hardware, and
// must not be reported as a fault (the supervisor would fail a trial on it).
var errStopping = errors.New("agent: stopping")

// start does everything before the loop: devices, boot/restore, connection,
// shadows.
func (r *runner) start(ctx, ictx context.Context) error {
	a := r.a
	now := a.clock.Now()
	a.mu.Lock()
	a.snap.Started = now
	a.mu.Unlock()
	r.offlineSince = now
	// Fixed before anything can signal READY: a test that advances a fake
	// clock on READY must find the first heartbeat due.
	r.beatAt = now.Add(a.deps.Heartbeat)
	if err := r.setSpec(r.cfg); err != nil {
		return err
	}

	r.hal = a.deps.HAL
	if r.hal == nil {
		h, err := periph.New(periph.Options{SysfsRoot: sysfs(a.deps.SysRoot)})
		if err != nil {
			return fmt.Errorf("agent: opening the hardware: %w", err)
		}
		r.hal, r.ownHAL = h, true
	}
	// State from disk; a bad file is not fatal.
	st, err := loadState(statePath(r.cfg), r.cfg.Thing)
	if err != nil {
		a.log.Warn("state file unusable", "err", err)
		r.stateError(err)
	}
	r.state = clampFuture(st, a.clock.Now())
	cl, via, err := a.newClient(r.cfg) // Greengrass discovery happens at its first attempt
	if err != nil {
		return err
	}
	r.ic, r.via = cl, via
	r.events, r.stopEv = cl.Watch(64)
	so := a.deps.Shadow
	if so.Logger == nil {
		so.Logger = a.log
	}
	sc, err := shadowsync.NewIOT(cl, so)
	if err != nil {
		return fmt.Errorf("agent: shadow client: %w", err)
	}
	r.sc = sc
	r.shadows = map[string]*shadowsync.Shadow{}
	for _, s := range r.cfg.Shadows {
		name := s.Name
		sh, err := sc.Open(ctx, shadowsync.Key{Thing: r.cfg.Thing, Name: name}, shadowsync.ShadowOptions{
			OnReportError: func(err error) {
				a.log.Error("reported update dropped", "shadow", name, "err", err)
				a.emit(Event{Kind: EventFault, Shadow: name, Message: err.Error()})
			},
		})
		if err != nil {
			return fmt.Errorf("agent: opening shadow %q: %w", name, err)
		}
		r.shadows[name] = sh
		r.seen[name] = -1
		r.wg.Add(1)
		go r.forwardDeltas(ictx, name, sh)
	}
	if err := r.startJobs(ctx); err != nil {
		return err
	}
	a.mu.Lock()
	a.statusf = r.liveStatus
	a.live = r
	a.mu.Unlock()
	r.wg.Add(2)
	go r.connect(ictx)
	go r.publishTelemetry(ictx)

	// Wait a little for the shadows (bounded): the outputs can then be
	// opened at the level desired asks for, instead of restoring the last
	// applied value and switching again once the shadow arrives.
	mirrors := r.awaitFirstGet(ctx)
	if err := r.openDevices(ctx, now, r.initialLevels(now, mirrors)); err != nil {
		return err
	}

	// What the outputs hold now.
	r.obs = map[reconcile.Output]devices.Value{}
	r.readOutputs(ctx)

	// Boot / restore (or desired, when the shadow is already known), with
	// the first readings: one coalesced report.
	r.readSensors(ctx)
	r.reconcile(ctx, "start")
	r.publishStatus()

	r.startWatchers(ictx)
	return nil
}

// openDevices opens every configured device, outputs at initial. A device
// that cannot be opened is reported and kept as broken (retried later); it
// returns errStopping only when ctx ends.
func (r *runner) openDevices(ctx context.Context, now time.Time, initial map[string]devices.Value) error {
	a := r.a
	r.buses = devices.NewSharedBuses(r.hal)
	r.env = devices.Env{Lines: r.hal, Buses: r.buses, SysRoot: a.deps.SysRoot}
	for _, d := range r.cfg.Devices {
		if ctx.Err() != nil {
			return errStopping
		}
		dev, err := a.deps.Registry.Open(ctx, d.Driver, r.env, withInitial(d.Options, initial[d.ID]))
		if err != nil && ctx.Err() != nil {
			return errStopping
		}
		if err != nil {
			err = fmt.Errorf("opening device %q (%s, %s): %w", d.ID, d.Driver, d.Wiring, err)
			r.fail(err)
			a.emit(Event{Kind: EventFault, Device: d.ID, Message: err.Error()})
			dev = &brokenDevice{cfg: d, props: d.Properties, err: err, failures: 1, retryAt: now.Add(backoff().Delay(1))}
		}
		r.devs[d.ID] = dev
	}
	r.indexProps()
	return nil
}

// endpoint names where the connection goes: the configured endpoint, or
// (Greengrass discovery) the core address or fallback chosen last.
func (r *runner) endpoint() string {
	if r.via != "" || r.ic == nil {
		return r.via
	}
	if d := r.ic.Destination(); d != "" {
		return d
	}
	return "Greengrass discovery (no core chosen yet)"
}

// awaitFirstGet waits up to Deps.FirstGetWait for the connection and a get
// of every shadow, and returns the mirrors known by then.
func (r *runner) awaitFirstGet(ctx context.Context) map[string]reconcile.Shadow {
	a := r.a
	if a.deps.FirstGetWait > 0 {
		wctx, cancel := context.WithTimeout(ctx, a.deps.FirstGetWait)
		defer cancel()
	wait:
		for !r.online {
			select {
			case <-wctx.Done():
				break wait
			case ev, ok := <-r.events:
				if !ok {
					break wait
				}
				switch ev.Type {
				case iot.EventOnline:
					r.online = true
					a.log.Info("online", "endpoint", r.endpoint())
					a.emit(Event{Kind: EventOnline, Message: r.endpoint()})
				case iot.EventOffline, iot.EventConnectFailed:
					if ev.Err != nil {
						r.fail(fmt.Errorf("connection: %w", ev.Err))
					}
				}
			}
		}
		if r.online {
			for _, name := range sortedKeys(r.shadows) {
				if _, err := r.shadows[name].Get(wctx); err != nil && !errors.Is(err, shadowsync.ErrNotFound) {
					a.log.Warn("first get of the shadow failed; starting from restored values", "shadow", name, "err", err)
				}
			}
		}
	}
	mirrors := map[string]reconcile.Shadow{}
	for name, sh := range r.shadows {
		if m := sh.Mirror(); m.Known {
			mirrors[name] = reconcile.Shadow{Version: m.Version, Desired: m.Desired, Reported: m.Reported}
		}
	}
	return mirrors
}

// initialLevels plans the start-up value of every output before the devices
// are opened — desired when the shadow is known, else the restored or boot
// value — so a line is opened at that level: a restart never drives a relay
// to its default first.
func (r *runner) initialLevels(now time.Time, mirrors map[string]reconcile.Shadow) map[string]devices.Value {
	out := map[string]devices.Value{}
	// The restored (or boot) level, then what the known shadows desire.
	for _, in := range []reconcile.Input{
		{Spec: &r.spec, State: r.state, Now: now},
		{Spec: &r.spec, State: r.state, Now: now, Shadows: mirrors},
	} {
		if in.Shadows != nil && len(mirrors) == 0 {
			continue
		}
		d := reconcile.Plan(in)
		for _, w := range d.Writes {
			if w.Value.Type() == devices.TypeBool {
				out[w.Output.Device] = w.Value
			}
		}
	}
	return out
}

// initialOption is implemented by the options of outputs that can open at
// a given level without a glitch (relay, LED).
type initialOption interface {
	WithInitial(on bool) devices.Options
}

// withInitial returns opts set to open at v when the driver supports it;
// other options, or a v that is not a bool, are returned unchanged.
func withInitial(opts devices.Options, v devices.Value) devices.Options {
	if o, ok := opts.(initialOption); ok && v.Type() == devices.TypeBool {
		return o.WithInitial(v.Bool())
	}
	return opts
}

func sysfs(root string) string {
	if root == "" {
		return ""
	}
	return strings.TrimRight(root, "/") + "/sys"
}

// connect starts the connection; the iot client retries for ever by itself.
func (r *runner) connect(ctx context.Context) {
	defer r.wg.Done()
	if err := r.ic.Connect(ctx); err != nil && ctx.Err() == nil {
		r.a.log.Error("connecting failed; retrying in the background", "endpoint", r.endpoint(), "err", err)
	}
}

// forwardDeltas turns a shadow's deltas into kicks of the loop.
func (r *runner) forwardDeltas(ctx context.Context, name string, sh *shadowsync.Shadow) {
	defer r.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-sh.Deltas():
			if !ok {
				return
			}
			r.a.emit(Event{Kind: EventDelta, Shadow: name, Value: d.State, Message: resyncWord(d.Resync)})
			select {
			case r.kick <- name:
			case <-ctx.Done():
				return
			}
		}
	}
}

func resyncWord(b bool) string {
	if b {
		return "resync"
	}
	return "delta"
}

// getShadows fetches every shadow after a (re)connect and kicks the loop.
func (r *runner) getShadows(ctx context.Context) {
	defer r.wg.Done()
	for name, sh := range r.shadows {
		gctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := sh.Get(gctx)
		cancel()
		if err != nil && !errors.Is(err, shadowsync.ErrNotFound) && ctx.Err() == nil {
			r.a.log.Warn("getting the shadow failed; it is retried on the next reconnect or delta", "shadow", name, "err", err)
		}
		select {
		case r.kick <- name:
		case <-ctx.Done():
			return
		}
	}
}

// publishTelemetry sends telemetry through the iot offline queue, off the
// loop (a QoS 1 publish waits for its PUBACK).
func (r *runner) publishTelemetry(ctx context.Context) {
	defer r.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-r.telec:
			b, _ := json.Marshal(map[string]any{"key": t.Key.String(), "value": t.Value, "at": t.At.UnixMilli()})
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := r.ic.Publish(pctx, t.Topic, b, iot.QoS(t.QoS))
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.a.log.Warn("telemetry not sent", "topic", t.Topic, "err", err)
				r.a.emit(Event{Kind: EventFault, Key: t.Key.String(), Message: fmt.Sprintf("telemetry to %s: %v", t.Topic, err)})
				continue
			}
			r.a.emit(Event{Kind: EventTelemetry, Key: t.Key.String(), Value: t.Value, Message: t.Topic, Status: res.String()})
		}
	}
}

// startWatchers runs each Watcher device (buttons, PIR) that feeds a
// reported key in its own goroutine.
func (r *runner) startWatchers(ctx context.Context) {
	watched := map[string]bool{}
	for _, k := range r.spec.Reported {
		watched[k.Device] = true
	}
	for _, id := range sortedKeys(r.devs) {
		w, ok := r.devs[id].(devices.Watcher)
		if !ok || !watched[id] {
			continue
		}
		r.wg.Add(1)
		go r.watch(ctx, id, w)
	}
}

func (r *runner) watch(ctx context.Context, id string, w devices.Watcher) {
	defer r.wg.Done()
	failures := 0
	for {
		err := w.Watch(ctx, func(rd devices.Readings) {
			failures = 0
			select {
			case r.watchc <- watchMsg{device: id, r: rd}:
			case <-ctx.Done():
			}
		})
		if ctx.Err() != nil {
			return
		}
		failures++
		select {
		case r.watchc <- watchMsg{device: id, err: err}:
		case <-ctx.Done():
			return
		}
		c, stop := r.a.clock.NewTimer(backoff().Delay(failures))
		select {
		case <-c:
		case <-ctx.Done():
			stop()
			return
		}
	}
}

// setSpec installs cfg's mapping (start and reload).
func (r *runner) setSpec(cfg *config.Config) error {
	spec := cfg.Spec()
	s, err := reconcile.NewSensors(&spec, backoff())
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	r.cfg, r.spec, r.sensors = cfg, spec, s
	seen := map[time.Duration]bool{}
	r.failsafes = nil
	for _, k := range spec.Desired {
		if d := k.Safety.FailsafeAfter; d > 0 && k.Safety.Failsafe.Type() != 0 && !seen[d] {
			seen[d] = true
			r.failsafes = append(r.failsafes, d)
		}
	}
	sort.Slice(r.failsafes, func(i, j int) bool { return r.failsafes[i] < r.failsafes[j] })
	r.keys = map[string]*KeyStatus{}
	for _, k := range spec.Desired {
		r.keys[k.Key.String()] = &KeyStatus{Key: k.Key.String(), Device: k.Device, Property: k.Property}
	}
	r.sens = map[string]*SensorStatus{}
	for _, k := range spec.Reported {
		r.sens[k.Key.String()] = &SensorStatus{Key: k.Key.String(), Device: k.Device, Property: k.Property}
	}
	return nil
}

func (r *runner) indexProps() {
	r.props = map[reconcile.Output]devices.Property{}
	for _, k := range r.spec.Desired {
		d, ok := r.devs[k.Device]
		if !ok {
			continue
		}
		if p, err := devices.FindProperty(d.Properties(), k.Property); err == nil {
			r.props[reconcile.Output{Device: k.Device, Property: k.Property}] = p
		}
	}
}

// readOutputs reads every device with a mapped output, so Plan knows what
// the hardware holds.
func (r *runner) readOutputs(ctx context.Context) {
	byDev := map[string][]string{}
	for _, k := range r.spec.Desired {
		byDev[k.Device] = append(byDev[k.Device], k.Property)
	}
	for _, id := range sortedKeys(byDev) {
		d, ok := r.devs[id]
		if !ok {
			continue
		}
		rd, err := d.Read(ctx)
		if err != nil {
			r.a.log.Warn("reading outputs failed; they count as unknown and are written", "device", id, "err", err)
			continue
		}
		for _, p := range byDev[id] {
			if v, ok := rd[p]; ok && v.Type() != 0 {
				r.obs[reconcile.Output{Device: id, Property: p}] = v
			}
		}
	}
}

// loop is the reconcile loop: the one goroutine that owns the devices and
// the reconcile state.
func (r *runner) loop(ctx, ictx context.Context) {
	a := r.a
	r.beat()
	// The next heartbeat is fixed when an iteration ends, before its event
	// is emitted: a clock that moves while the loop is between iterations
	// (a test advancing a fake clock on that event) then cannot push it back.
	for {
		now := a.clock.Now()
		next := r.beatAt
		for _, t := range []time.Time{r.wake, r.sensors.Next(), r.failsafeDue(now), r.nextReopen()} {
			if !t.IsZero() && t.Before(next) {
				next = t
			}
		}
		tc, stop := a.clock.NewTimer(next.Sub(now))
		if !a.clock.Now().Before(next) {
			// The clock moved past next while the timer was being made (a
			// fake clock advanced by a test between Now and NewTimer): the
			// timer would fire late by that much, so fire now.
			stop()
			c := make(chan time.Time, 1)
			c <- next
			tc = c
		}
		why := ""
		select {
		case <-ctx.Done():
			stop()
			return
		case name := <-r.kick:
			stop()
			why = "delta"
			r.deltaAt[name] = a.clock.Now()
			r.drainKicks()
		case ev, ok := <-r.events:
			stop()
			if !ok {
				r.events = nil
				continue
			}
			why = "connection"
			r.connEvent(ictx, ev)
		case m := <-r.watchc:
			stop()
			why = "watch"
			r.watched(m)
		case p := <-r.patchc:
			stop()
			why = "desired patch"
			delete(r.patchIn, p.shadow)
			if p.err != nil && !errors.Is(p.err, shadowsync.ErrConflict) {
				r.fail(fmt.Errorf("on_reject desired patch for shadow %q: %w", p.shadow, p.err))
			}
		case req := <-a.reloadc:
			stop()
			why = "reload"
			req.reply <- r.reload(ctx, req.cfg)
		case <-tc:
			why = "timer"
		}
		r.reopen(ctx)
		r.readSensors(ctx)
		r.reconcile(ctx, why)
		r.publishStatus()
		r.beat()
		r.beatAt = a.clock.Now().Add(a.deps.Heartbeat)
		a.emit(Event{Kind: EventIteration, Message: why})
	}
}

func (r *runner) beat() {
	now := r.a.clock.Now()
	r.a.beat.Store(&now)
}

func (r *runner) drainKicks() {
	for {
		select {
		case name := <-r.kick:
			r.deltaAt[name] = r.a.clock.Now()
		default:
			return
		}
	}
}

// failsafeDue is when the next failsafe threshold is crossed while offline.
func (r *runner) failsafeDue(now time.Time) time.Time {
	if r.online {
		return time.Time{}
	}
	for _, d := range r.failsafes {
		if t := r.offlineSince.Add(d); t.After(now) {
			return t
		}
	}
	return time.Time{}
}

func (r *runner) connEvent(ctx context.Context, ev iot.Event) {
	a := r.a
	switch ev.Type {
	case iot.EventOnline:
		if !r.online {
			r.online = true
			a.log.Info("online", "endpoint", r.endpoint())
			a.emit(Event{Kind: EventOnline, Message: r.endpoint()})
		}
		r.wg.Add(1)
		go r.getShadows(ctx)
	case iot.EventOffline, iot.EventConnectFailed:
		if ev.Err != nil {
			r.fail(fmt.Errorf("connection: %w", ev.Err))
		}
		if r.online {
			r.online = false
			r.offlineSince = a.clock.Now()
			a.log.Warn("offline", "err", ev.Err, "retry_in", ev.RetryIn)
			msg := ""
			if ev.Err != nil {
				msg = ev.Err.Error()
			}
			a.emit(Event{Kind: EventOffline, Message: msg})
		}
	}
}

func (r *runner) watched(m watchMsg) {
	now := r.a.clock.Now()
	if m.err != nil {
		r.a.log.Warn("watching an input failed; retrying", "device", m.device, "err", m.err)
		r.a.emit(Event{Kind: EventSensorError, Device: m.device, Message: m.err.Error()})
		return
	}
	r.sensors.Read(m.device, m.r, nil, now)
	r.sensorStatus(m.device, m.r, nil, now)
}

// readSensors reads every device due and reports one coalesced patch per
// shadow.
func (r *runner) readSensors(ctx context.Context) {
	now := r.a.clock.Now()
	for _, id := range r.sensors.Due(now) {
		d, ok := r.devs[id]
		var rd devices.Readings
		var err error
		if !ok {
			err = fmt.Errorf("device %q is not open", id)
		} else {
			rd, err = d.Read(ctx)
		}
		r.sensors.Read(id, rd, err, now)
		r.sensorStatus(id, rd, err, now)
	}
}

func (r *runner) sensorStatus(id string, rd devices.Readings, err error, now time.Time) {
	for _, k := range r.spec.Reported {
		if k.Device != id {
			continue
		}
		s := r.sens[k.Key.String()]
		if s == nil {
			continue
		}
		s.At = now
		if err != nil {
			s.Value, s.Error = nil, err.Error()
			r.a.emit(Event{Kind: EventSensorError, Key: s.Key, Device: id, Property: k.Property, Message: err.Error()})
			continue
		}
		v, ok := rd[k.Property]
		if !ok {
			continue
		}
		s.Value, s.Error = v.Any(), ""
		r.a.emit(Event{Kind: EventSensor, Key: s.Key, Shadow: k.Key.Shadow, Device: id, Property: k.Property, Value: v.Any()})
	}
	if err != nil {
		r.fail(fmt.Errorf("reading %s: %w", id, err))
	}
}

// reconcile runs one Plan → writes → Outcome step and sends its patches.
func (r *runner) reconcile(ctx context.Context, why string) {
	a := r.a
	now := a.clock.Now()
	mirrors := map[string]reconcile.Shadow{}
	desiredAge := map[string]time.Duration{}
	for name, sh := range r.shadows {
		m := sh.Mirror()
		if !m.Known {
			continue
		}
		desiredAge[name] = m.DesiredAge
		mirrors[name] = reconcile.Shadow{Version: m.Version, Desired: m.Desired, Reported: m.Reported}
		r.seen[name] = m.Version
	}
	var offline time.Duration
	if !r.online {
		offline = now.Sub(r.offlineSince)
	}
	in := reconcile.Input{Spec: &r.spec, Shadows: mirrors, Observed: r.obs, Props: r.props,
		State: r.state, Offline: offline, Now: now}
	d := reconcile.Plan(in)
	done := make([]reconcile.Done, 0, len(d.Writes))
	for i, w := range d.Writes {
		if !d.Ready(i, done) {
			done = append(done, reconcile.Done{Skipped: true})
			continue
		}
		dev, ok := r.devs[w.Output.Device]
		if !ok {
			done = append(done, reconcile.Done{Err: fmt.Errorf("device %q is not open", w.Output.Device)})
			continue
		}
		err := dev.Write(ctx, w.Output.Property, w.Value)
		var rb devices.Value
		if err == nil {
			if rd, rerr := dev.Read(ctx); rerr == nil {
				rb = rd[w.Output.Property]
			}
		}
		done = append(done, reconcile.Done{Err: err, ReadBack: rb})
		lat := a.clock.Now().Sub(now)
		if age := desiredAge[w.Key.Shadow]; age > 0 && w.Why == "desired" {
			// From the arrival of the message that brought the desired
			// value (an update reply can beat its delta, and then a timer
			// or sensor iteration applies it before the delta's kick).
			lat += age
		} else if t, ok := r.deltaAt[w.Key.Shadow]; ok && w.Why == "desired" {
			lat = a.clock.Now().Sub(t)
		}
		ev := Event{Kind: EventWrite, Shadow: w.Key.Shadow, Key: w.Key.String(), Device: w.Output.Device,
			Property: w.Output.Property, Value: w.Value.Any(), Message: w.Why, Latency: lat}
		if err != nil {
			ev.Kind, ev.Message = EventFault, fmt.Sprintf("writing %v to %s failed: %v", w.Value, w.Output, err)
			r.fail(errors.New(ev.Message))
			a.log.Error("write failed", "key", w.Key.String(), "output", w.Output.String(), "value", w.Value.String(), "err", err)
		} else {
			a.log.Info("write", "key", w.Key.String(), "output", w.Output.String(), "value", w.Value.String(), "why", w.Why)
			if ks := r.keys[w.Key.String()]; ks != nil && w.Why == "desired" {
				ks.Latency = lat
			}
			if w.Why == "failsafe" {
				a.emit(Event{Kind: EventFailsafe, Shadow: w.Key.Shadow, Key: w.Key.String(), Device: w.Output.Device,
					Property: w.Output.Property, Value: w.Value.Any(), Message: fmt.Sprintf("offline for %s", offline.Round(time.Second))})
			}
		}
		a.emit(ev)
	}
	rep := d.Outcome(done)
	r.obs, r.state, r.wake = rep.Observed, rep.State, rep.Wake
	r.results(rep.Results)
	r.persist()
	// The on_reject patch is a conditional update on the version Plan saw:
	// send it before this iteration's report, which would move the version
	// first and make the patch fail once with 409.
	for _, name := range sortedKeys(rep.Desired) {
		r.desiredPatch(ctx, name, rep.Desired[name], in.Shadows[name])
	}
	for _, name := range sortedKeys(rep.Reported) {
		// Outcome diffs against the mirror, which lags our own reports (and
		// does not move while offline): send a patch again only when it or
		// the document changed, so a heartbeat does not repeat it.
		key := fmt.Sprintf("%d|%s", mirrors[name].Version, mustJSON(rep.Reported[name]))
		if r.sentOutcome[name] == key {
			continue
		}
		r.sentOutcome[name] = key
		r.report(name, rep.Reported[name])
	}
	if sp := r.sensors.Patch(); sp != nil {
		for _, name := range sortedKeys(sp) {
			r.report(name, sp[name])
		}
	}
	for _, t := range r.sensors.Telemetry() {
		select {
		case r.telec <- t:
		default:
			a.log.Warn("telemetry dropped: the publisher is behind", "topic", t.Topic)
		}
	}
	if !r.converged && len(r.shadows) > 0 && len(mirrors) == len(r.shadows) {
		r.converged = true
		r.publishStatus() // a status read on READY shows this convergence
		a.log.Info("converged with the cloud", "thing", r.cfg.Thing, "why", why)
		a.emit(Event{Kind: EventReady})
		a.readyMu.Do(func() { close(a.ready) })
	}
}

func (r *runner) report(name string, p map[string]any) {
	if len(p) == 0 {
		return
	}
	sh, ok := r.shadows[name]
	if !ok {
		return
	}
	if err := sh.Report(p); err != nil {
		r.fail(fmt.Errorf("reporting to shadow %q: %w", name, err))
		return
	}
	r.a.emit(Event{Kind: EventReported, Shadow: name, Value: p})
}

// desiredPatch sends an on_reject patch as a conditional update, off the
// loop; the loop plans again when it is answered.
func (r *runner) desiredPatch(ctx context.Context, name string, p map[string]any, seen reconcile.Shadow) {
	sh, ok := r.shadows[name]
	if !ok || len(p) == 0 || r.patchIn[name] || !r.online {
		return
	}
	r.patchIn[name] = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		// The patch must not overwrite a desired value the cloud changed
		// since Plan saw it. Our own reports move the version without
		// touching desired, so when the mirror still holds the same desired
		// values under the patched keys, its newer version is as good.
		version := seen.Version
		if m := sh.Mirror(); m.Version > version && sameLeaves(p, seen.Desired, m.Desired) {
			version = m.Version
		}
		uctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, err := sh.Update(uctx, shadowsync.UpdateRequest{Desired: p, Version: version})
		cancel()
		ev := Event{Kind: EventDesiredPatch, Shadow: name, Value: p}
		if err != nil {
			ev.Message = err.Error()
		}
		r.a.emit(ev)
		select {
		case r.patchc <- patchDone{shadow: name, err: err}:
		case <-ctx.Done():
		}
	}()
}

// results records every key's result for the status and emits changes.
func (r *runner) results(res map[reconcile.KeyPath]reconcile.Result) {
	for k, v := range res {
		ks := r.keys[k.String()]
		if ks == nil {
			ks = &KeyStatus{Key: k.String()}
			r.keys[k.String()] = ks
		}
		changed := ks.Status != string(v.Status) || ks.Message != v.Message || !ks.At.Equal(v.At)
		ks.Status, ks.Code, ks.Message, ks.Version, ks.At, ks.ApplyAt = string(v.Status), v.Code, v.Message, v.Version, v.At, v.ApplyAt
		if ks.Device == "" {
			ks.Device = "-"
		}
		if ks := r.state.Keys[k]; ks.Applied != nil {
			r.keys[k.String()].Value = ks.Applied
		}
		if !changed {
			continue
		}
		ev := Event{Kind: EventResult, Shadow: k.Shadow, Key: k.String(), Device: ks.Device, Property: ks.Property,
			Status: string(v.Status), Message: v.Message}
		if v.Status == reconcile.Applied {
			// Only then is the last applied value the one this result is
			// about; a rejection's message names the refused value itself.
			ev.Value = r.keys[k.String()].Value
		}
		r.a.emit(ev)
		if v.Status == reconcile.Rejected {
			r.a.log.Warn("desired value rejected", "key", k.String(), "code", v.Code, "reason", v.Message)
			ev.Kind = EventReject
			r.a.emit(ev)
		}
	}
	for _, dk := range r.spec.Desired {
		if ks := r.keys[dk.Key.String()]; ks != nil {
			if v, ok := r.obs[reconcile.Output{Device: dk.Device, Property: dk.Property}]; ok {
				ks.Hardware = v.Any()
			} else {
				ks.Hardware = nil
			}
		}
	}
	for k, ks := range r.keys {
		if ks.Device == "-" {
			if _, ok := res[keyPath(k)]; !ok {
				delete(r.keys, k)
			}
		}
	}
}

func keyPath(s string) reconcile.KeyPath {
	var k reconcile.KeyPath
	if i := strings.IndexByte(s, '/'); i >= 0 {
		k.Shadow, k.Path = s[:i], s[i+1:]
	} else {
		k.Path = s
	}
	return k
}

// persist writes the state when it changed; a failure is logged once and the
// agent carries on from memory.
func (r *runner) persist() {
	b, err := encodeState(r.state, r.cfg.Thing)
	if err != nil {
		r.stateError(fmt.Errorf("encoding state: %w", err))
		return
	}
	if string(b) == string(r.saved) {
		return
	}
	if err := writeAtomic(statePath(r.cfg), b); err != nil {
		if r.stateOK {
			r.a.log.Error("cannot save state; running from memory (a restart will start from boot values)", "err", err)
		}
		r.stateOK = false
		r.stateError(err)
		return
	}
	if !r.stateOK {
		r.a.log.Info("state saved again", "file", statePath(r.cfg))
		r.a.mu.Lock()
		r.a.snap.StateError = ""
		r.a.mu.Unlock()
	}
	r.stateOK = true
	r.saved = b
}

func (r *runner) stateError(err error) {
	r.fail(err)
	r.a.mu.Lock()
	r.a.snap.StateError = err.Error()
	r.a.mu.Unlock()
	r.a.emit(Event{Kind: EventStateError, Message: err.Error()})
}

func (r *runner) fail(err error) {
	r.lastErr, r.lastAt = err.Error(), r.a.clock.Now()
	r.a.mu.Lock()
	r.a.snap.LastError, r.a.snap.LastErrorAt = r.lastErr, r.lastAt
	r.a.mu.Unlock()
}

// reload switches to a compatible configuration.
func (r *runner) reload(ctx context.Context, cfg *config.Config) error {
	a := r.a
	if err := a.compatible(cfg); err != nil {
		a.log.Error("reload refused", "err", err)
		a.emit(Event{Kind: EventReloadRefused, Message: err.Error()})
		return err
	}
	var names []string
	for _, s := range cfg.Shadows {
		names = append(names, s.Name)
	}
	var old []string
	for _, s := range r.cfg.Shadows {
		old = append(old, s.Name)
	}
	sort.Strings(names)
	sort.Strings(old)
	if !reflect.DeepEqual(names, old) {
		err := fmt.Errorf("%w: the set of shadows changed (%v → %v); restart the agent to apply this", ErrReloadRefused, old, names)
		a.log.Error("reload refused", "err", err)
		a.emit(Event{Kind: EventReloadRefused, Message: err.Error()})
		return err
	}
	if err := r.setSpec(cfg); err != nil {
		err = fmt.Errorf("%w: %w", ErrReloadRefused, err)
		a.emit(Event{Kind: EventReloadRefused, Message: err.Error()})
		return err
	}
	r.indexProps()
	a.mu.Lock()
	a.cfg = cfg
	a.snap.Config = cfg.Files
	a.mu.Unlock()
	a.log.Info("configuration reloaded", "files", cfg.Files)
	a.emit(Event{Kind: EventReload, Message: strings.Join(cfg.Files, ", ")})
	_ = ctx
	return nil
}

// publishStatus copies the loop's view into the agent's snapshot.
func (r *runner) publishStatus() {
	keys := make([]KeyStatus, 0, len(r.keys))
	for _, k := range sortedKeys(r.keys) {
		keys = append(keys, *r.keys[k])
	}
	sens := make([]SensorStatus, 0, len(r.sens))
	for _, k := range sortedKeys(r.sens) {
		sens = append(sens, *r.sens[k])
	}
	r.a.mu.Lock()
	r.a.snap.Keys, r.a.snap.Sensors = keys, sens
	r.a.mu.Unlock()
}

// liveStatus reads the connection and shadows (safe from any goroutine).
func (r *runner) liveStatus() Status {
	var s Status
	if r.jobRunner != nil {
		j := r.jobRunner.Snapshot()
		s.Jobs = &j
	}
	st := r.ic.Stats()
	s.Connection = ConnectionStatus{Endpoint: r.endpoint(), State: st.State.String(),
		Since: st.OnlineSince, Connects: st.Connects, Drops: st.Drops, Queued: st.Queued, Dropped: st.Dropped, LastErrorAt: st.LastErrorAt}
	if st.LastError != nil {
		s.Connection.LastError = st.LastError.Error()
	}
	for _, name := range sortedKeys(r.shadows) {
		sh := r.shadows[name]
		m := sh.Mirror()
		rs := sh.Status()
		ss := ShadowStatus{Name: name, Known: m.Known, Version: m.Version, InSync: m.InSync,
			PendingReports: rs.Pending, RetryAt: rs.RetryAt}
		if rs.InFlight {
			ss.PendingReports++
		}
		if rs.LastError != nil {
			ss.LastError = rs.LastError.Error()
		}
		s.Shadows = append(s.Shadows, ss)
	}
	return s
}

// stop ends the run: final report and clean disconnect (unless a hard stop),
// then every goroutine, device and bus is released.
func (r *runner) stop(ctx context.Context) {
	a := r.a
	hard := errors.Is(context.Cause(ctx), ErrHardStop)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.deps.StopTimeout)
	defer cancel()
	if !hard && r.sc != nil {
		if p := r.sensors.Patch(); p != nil {
			for _, name := range sortedKeys(p) {
				r.report(name, p[name])
			}
		}
		if r.online {
			for _, name := range sortedKeys(r.shadows) {
				if err := r.shadows[name].Flush(sctx); err != nil {
					a.log.Warn("final report not confirmed", "shadow", name, "err", err)
				}
			}
		}
	}
	a.mu.Lock()
	a.statusf = nil
	a.live = nil
	if r.ic != nil {
		st := r.ic.Stats()
		a.snap.Connection.State = iot.StateClosed.String()
		a.snap.Connection.Queued = st.Queued
	}
	a.mu.Unlock()
	r.cancel()
	r.stopJobs(sctx)
	if r.sc != nil {
		_ = r.sc.Close(sctx)
	}
	if r.ic != nil {
		if hard {
			// A crash sends no DISCONNECT; Close still releases the goroutines.
			cctx, c := context.WithTimeout(context.Background(), 50*time.Millisecond)
			_ = r.ic.Close(cctx)
			c()
			_ = r.ic.Close(sctx)
		} else if err := r.ic.Close(sctx); err != nil {
			a.log.Warn("disconnect not clean", "err", err)
		}
	}
	if r.stopEv != nil {
		r.stopEv()
	}
	r.wg.Wait()
	for _, id := range sortedKeys(r.devs) {
		if err := r.devs[id].Close(); err != nil {
			a.log.Warn("closing device", "device", id, "err", err)
		}
	}
	if r.buses != nil {
		_ = r.buses.Close()
	}
	if r.ownHAL && r.hal != nil {
		_ = r.hal.Close()
	}
	a.log.Info("stopped", "hard", hard)
}

// brokenDevice stands in for a device that failed to open: every operation
// fails with the open error, so its keys report faults and the rest runs.
// The loop tries to open it again with backoff (reopen).
type brokenDevice struct {
	cfg      config.Device
	props    []devices.Property
	err      error
	failures int
	retryAt  time.Time
}

func (b *brokenDevice) Properties() []devices.Property { return b.props }
func (b *brokenDevice) Read(context.Context) (devices.Readings, error) {
	return nil, b.err
}
func (b *brokenDevice) Write(context.Context, string, devices.Value) error { return b.err }
func (b *brokenDevice) Close() error                                       { return nil }

// reopen tries again to open the devices that failed to (hardware that
// appears late: a udev rule applied after start, a chip powered later).
func (r *runner) reopen(ctx context.Context) {
	now := r.a.clock.Now()
	opened := false
	for _, id := range sortedKeys(r.devs) {
		b, ok := r.devs[id].(*brokenDevice)
		if !ok || now.Before(b.retryAt) {
			continue
		}
		dev, err := r.a.deps.Registry.Open(ctx, b.cfg.Driver, r.env, b.cfg.Options)
		if err != nil {
			b.failures++
			b.err = fmt.Errorf("opening device %q (%s, %s): %w", id, b.cfg.Driver, b.cfg.Wiring, err)
			b.retryAt = now.Add(backoff().Delay(b.failures))
			continue
		}
		r.a.log.Info("device opened", "device", id, "attempts", b.failures+1)
		r.devs[id] = dev
		opened = true
		if w, ok := dev.(devices.Watcher); ok {
			for _, k := range r.spec.Reported {
				if k.Device == id {
					r.wg.Add(1)
					go r.watch(r.wctx, id, w)
					break
				}
			}
		}
	}
	if opened {
		r.indexProps()
		r.readOutputs(ctx)
	}
}

// nextReopen is when the next broken device is due for another try.
func (r *runner) nextReopen() time.Time {
	var t time.Time
	for _, d := range r.devs {
		if b, ok := d.(*brokenDevice); ok && (t.IsZero() || b.retryAt.Before(t)) {
			t = b.retryAt
		}
	}
	return t
}

// sameLeaves reports whether desired documents a and b hold the same value
// (or both none) at every leaf path of patch.
func sameLeaves(patch, a, b map[string]any) bool {
	for k, pv := range patch {
		av, aok := a[k]
		bv, bok := b[k]
		if sub, isMap := pv.(map[string]any); isMap {
			am, _ := av.(map[string]any)
			bm, _ := bv.(map[string]any)
			if !sameLeaves(sub, am, bm) {
				return false
			}
			continue
		}
		if aok != bok || !reflect.DeepEqual(av, bv) {
			return false
		}
	}
	return true
}
