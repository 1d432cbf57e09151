package fake

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/hal"
)

// errStopped is returned when a wait is cut short because its handle or the
// HAL was closed.
var errStopped = fmt.Errorf("fake: interrupted by close: %w", hal.ErrClosed)

// Option configures a HAL or a standalone Bus.
type Option func(*config)

type config struct {
	clock Clock
	seed  uint64
	// logLimit bounds the op log (0: unbounded); see WithLogLimit.
	logLimit int
	pins     map[string]bool // nil: any name
	pwms     map[string]bool
	buses    map[string]bool
}

// WithClock injects the clock (default RealClock).
func WithClock(c Clock) Option { return func(cfg *config) { cfg.clock = c } }

// WithLogLimit keeps only about the newest n ops in the log (between n and
// 2n), for long simulations; tests that inspect the whole history leave it
// unbounded (the default). PhysicalHistory then covers the kept ops only.
func WithLogLimit(n int) Option { return func(cfg *config) { cfg.logLimit = n } }

// WithSeed seeds the random numbers behind rate-based fault injection
// (default 1), so a failing run can be replayed exactly.
func WithSeed(seed uint64) Option { return func(cfg *config) { cfg.seed = seed } }

// WithPins restricts the line names that can be opened (e.g. to a board
// profile's names); by default any name opens.
func WithPins(names ...string) Option {
	return func(cfg *config) { cfg.pins = set(cfg.pins, names) }
}

// WithPWMs restricts the PWM channel names that can be opened.
func WithPWMs(names ...string) Option {
	return func(cfg *config) { cfg.pwms = set(cfg.pwms, names) }
}

// WithI2CBuses restricts the I2C bus names that can be opened (after
// normalisation: "1", "I2C1" and "/dev/i2c-1" are all bus "1").
func WithI2CBuses(names ...string) Option {
	return func(cfg *config) {
		for i, n := range names {
			names[i] = busKey(n)
		}
		cfg.buses = set(cfg.buses, names)
	}
}

func set(m map[string]bool, names []string) map[string]bool {
	if m == nil {
		m = map[string]bool{}
	}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func newConfig(opts []Option) config {
	cfg := config{clock: RealClock{}, seed: 1}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// HAL is an in-memory hal.HAL. All methods are safe for concurrent use.
type HAL struct {
	cfg  config
	log  *Log
	done chan struct{} // closed by Close

	mu      sync.Mutex
	closed  bool
	pins    map[string]*pin
	pwms    map[string]*pwmChan
	buses   map[string]*Bus
	latency map[string]time.Duration // per line or PWM channel name
	errs    map[string]error         // injected errors per line or PWM channel name
	changed chan struct{}            // closed and replaced whenever a line's wire level changes
}

var _ hal.HAL = (*HAL)(nil)

// New returns an empty fake HAL.
func New(opts ...Option) *HAL {
	cfg := newConfig(opts)
	return &HAL{
		cfg:     cfg,
		log:     newLog(cfg.clock, cfg.logLimit),
		done:    make(chan struct{}),
		pins:    map[string]*pin{},
		pwms:    map[string]*pwmChan{},
		buses:   map[string]*Bus{},
		latency: map[string]time.Duration{},
		errs:    map[string]error{},
		changed: make(chan struct{}),
	}
}

// Clock returns the HAL's clock.
func (h *HAL) Clock() Clock { return h.cfg.clock }

// Log returns the operation log.
func (h *HAL) Log() *Log { return h.log }

// Ops returns a copy of the operation log.
func (h *HAL) Ops() []Op { return h.log.Ops() }

// WaitOp waits for the first logged op matching match (see Log.Wait).
func (h *HAL) WaitOp(ctx context.Context, match func(Op) bool) (Op, error) {
	return h.log.Wait(ctx, match)
}

// Close closes every open handle (unblocking waiters) and the HAL; later
// calls return hal.ErrClosed.
func (h *HAL) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	close(h.done)
	for _, b := range h.buses {
		b.close()
	}
	return nil
}

func (h *HAL) checkOpenLocked(kind, name string, allowed map[string]bool) error {
	if h.closed {
		return fmt.Errorf("fake: open %s %q: %w", kind, name, hal.ErrClosed)
	}
	if allowed != nil && !allowed[name] {
		return fmt.Errorf("fake: open %s %q: %w (known: %v)", kind, name, hal.ErrNotFound, sortedKeys(allowed))
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (h *HAL) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// ---- digital lines -------------------------------------------------------

type mode int

const (
	unopened mode = iota
	modeOut
	modeIn
)

type transition struct {
	at   time.Time
	high bool
}

// pin is the simulated wire plus the state of whoever has it open.
type pin struct {
	name     string
	mode     mode
	gen      int // bumped at each open, so stale handles are detected
	high     bool
	seen     bool  // high is meaningful (the line was opened or driven)
	driven   *bool // level the test drives onto the wire (inputs)
	stuck    *bool
	lastSet  hal.Level
	outCfg   hal.OutputConfig
	inCfg    hal.InputConfig
	raw      []transition // wire transitions not yet debounced
	reported hal.Level    // last level reported as an edge (or read at open)
	history  []bool
}

func (h *HAL) pinLocked(name string) *pin {
	p := h.pins[name]
	if p == nil {
		p = &pin{name: name}
		h.pins[name] = p
	}
	return p
}

// inputLevel is the wire level of an input: stuck, else driven by the test,
// else what the bias pulls it to (a floating line reads low here).
func (p *pin) inputLevel() bool {
	switch {
	case p.stuck != nil:
		return *p.stuck
	case p.driven != nil:
		return *p.driven
	default:
		return p.mode == modeIn && p.inCfg.Pull == hal.PullUp
	}
}

// setWireLocked records a new wire level, logging and queueing the change.
func (h *HAL) setWireLocked(p *pin, high bool) {
	if p.seen && p.high == high {
		return
	}
	p.high, p.seen = high, true
	p.history = append(p.history, high)
	h.log.add(Op{Kind: OpPhysical, Name: p.name, High: high})
	if p.mode == modeIn {
		p.raw = append(p.raw, transition{at: h.cfg.clock.Now(), high: high})
	}
	h.notifyLocked()
}

func logical(high, activeLow bool) hal.Level { return hal.Level(high != activeLow) }

// OpenOutput opens name as an output. The initial level is applied as the
// very first wire level: no opposite level is ever logged (see PhysicalHistory).
func (h *HAL) OpenOutput(ctx context.Context, name string, cfg hal.OutputConfig) (hal.DigitalOut, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.checkOpenLocked("output", name, h.cfg.pins); err != nil {
		return nil, err
	}
	p := h.pinLocked(name)
	if p.mode != unopened {
		return nil, fmt.Errorf("fake: open output %q: %w (already open)", name, hal.ErrBusy)
	}
	if err := h.errs[name]; err != nil {
		return nil, fmt.Errorf("fake: open output %q: %w", name, err)
	}
	p.mode, p.outCfg, p.lastSet = modeOut, cfg, cfg.Initial
	p.gen++
	p.driven = nil
	high := bool(cfg.Initial) != cfg.ActiveLow
	h.log.add(Op{Kind: OpOpen, Name: name, Level: cfg.Initial, High: high, Detail: "output"})
	if p.stuck != nil {
		h.log.add(Op{Kind: OpFault, Name: name, High: *p.stuck, Detail: "stuck: initial level ignored"})
		high = *p.stuck
	}
	h.setWireLocked(p, high)
	return &output{h: h, p: p, gen: p.gen, done: make(chan struct{})}, nil
}

// OpenInput opens name as an input; edges are queued from now on.
func (h *HAL) OpenInput(ctx context.Context, name string, cfg hal.InputConfig) (hal.DigitalIn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Debounce < 0 {
		return nil, fmt.Errorf("fake: open input %q: debounce %v: %w", name, cfg.Debounce, hal.ErrInvalid)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.checkOpenLocked("input", name, h.cfg.pins); err != nil {
		return nil, err
	}
	p := h.pinLocked(name)
	if p.mode != unopened {
		return nil, fmt.Errorf("fake: open input %q: %w (already open)", name, hal.ErrBusy)
	}
	if err := h.errs[name]; err != nil {
		return nil, fmt.Errorf("fake: open input %q: %w", name, err)
	}
	p.mode, p.inCfg = modeIn, cfg
	p.gen++
	p.raw = nil
	high := p.inputLevel()
	h.log.add(Op{Kind: OpOpen, Name: name, Level: logical(high, cfg.ActiveLow), High: high, Detail: "input"})
	if !p.seen || p.high != high {
		p.high, p.seen = high, true
		p.history = append(p.history, high)
		h.log.add(Op{Kind: OpPhysical, Name: name, High: high})
	}
	p.reported = logical(high, cfg.ActiveLow)
	return &input{h: h, p: p, gen: p.gen, edge: cfg.Edge, done: make(chan struct{})}, nil
}

// SetInput drives the wire of line name to high (true = electrical high,
// before any active-low inversion). The line may be open as an input or not
// open yet; driving a line open as an output is a short circuit and fails.
func (h *HAL) SetInput(name string, high bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("fake: drive %q: %w", name, hal.ErrClosed)
	}
	p := h.pinLocked(name)
	if p.mode == modeOut {
		return fmt.Errorf("fake: drive %q: line is open as an output: %w", name, hal.ErrBusy)
	}
	p.driven = &high
	h.log.add(Op{Kind: OpDrive, Name: name, High: high})
	if p.stuck != nil {
		h.log.add(Op{Kind: OpFault, Name: name, High: *p.stuck, Detail: "stuck: drive ignored"})
		return nil
	}
	h.setWireLocked(p, high)
	return nil
}

// Physical returns the electrical level of line name and whether it has
// one yet (it was opened or driven).
func (h *HAL) Physical(name string) (high, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pins[name]
	if p == nil {
		return false, false
	}
	return p.high, p.seen
}

// Level returns the logical level of line name as its opener sees it
// (the wire level with the opener's active-low applied).
func (h *HAL) Level(name string) hal.Level {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pins[name]
	if p == nil {
		return hal.Low
	}
	activeLow := p.outCfg.ActiveLow
	if p.mode == modeIn {
		activeLow = p.inCfg.ActiveLow
	}
	return logical(p.high, activeLow)
}

// PhysicalHistory returns every electrical level line name has had, in order
// (consecutive entries always differ). For an output opened with an initial
// level the first entry is that level.
func (h *HAL) PhysicalHistory(name string) []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pins[name]
	if p == nil {
		return nil
	}
	return append([]bool(nil), p.history...)
}

// Stick makes line name stuck at the electrical level high: an output's Set
// succeeds (as real hardware would report) but the wire does not move; an
// input reads high whatever the test drives.
func (h *HAL) Stick(name string, high bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pinLocked(name)
	p.stuck = &high
	h.log.add(Op{Kind: OpFault, Name: name, High: high, Detail: "stuck"})
	if p.mode != unopened {
		h.setWireLocked(p, high)
	}
}

// Unstick releases a stuck line: an output goes back to its last set level,
// an input to the level the test drives.
func (h *HAL) Unstick(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pinLocked(name)
	p.stuck = nil
	h.log.add(Op{Kind: OpFault, Name: name, Detail: "unstuck"})
	switch p.mode {
	case modeOut:
		h.setWireLocked(p, bool(p.lastSet) != p.outCfg.ActiveLow)
	case modeIn:
		h.setWireLocked(p, p.inputLevel())
	}
}

// SetLatency delays every later operation on line or PWM channel name by d
// (measured on the HAL's clock; a done context or a close cuts it short).
func (h *HAL) SetLatency(name string, d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latency[name] = d
}

// SetError makes every later open, Set, Read and PWM Set on line or PWM
// channel name fail with err (wrapped); nil clears it.
func (h *HAL) SetError(name string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.errs, name)
		return
	}
	h.errs[name] = err
}

// delay waits for the latency configured for name.
func (h *HAL) delay(ctx context.Context, name string, done <-chan struct{}) error {
	h.mu.Lock()
	d := h.latency[name]
	h.mu.Unlock()
	if err := sleep(ctx, h.cfg.clock, d, done, h.done); err != nil {
		return err
	}
	return ctx.Err()
}

// output is an open DigitalOut handle.
type output struct {
	h    *HAL
	p    *pin
	gen  int
	done chan struct{}
	once sync.Once
}

// usableLocked reports why a handle can no longer be used.
func usableLocked(h *HAL, p *pin, gen int, what string) error {
	if h.closed || p.gen != gen || p.mode == unopened {
		return fmt.Errorf("fake: %s %q: %w", what, p.name, hal.ErrClosed)
	}
	return nil
}

func (o *output) Set(ctx context.Context, l hal.Level) error {
	if err := o.h.delay(ctx, o.p.name, o.done); err != nil {
		return fmt.Errorf("fake: set %q: %w", o.p.name, err)
	}
	h := o.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := usableLocked(h, o.p, o.gen, "set"); err != nil {
		return err
	}
	if e := h.errs[o.p.name]; e != nil {
		err := fmt.Errorf("fake: set %q: %w", o.p.name, e)
		h.log.add(Op{Kind: OpSet, Name: o.p.name, Level: l, High: o.p.high, Err: err})
		return err
	}
	o.p.lastSet = l
	high := bool(l) != o.p.outCfg.ActiveLow
	if o.p.stuck != nil {
		h.log.add(Op{Kind: OpFault, Name: o.p.name, High: *o.p.stuck, Detail: "stuck: set ignored"})
		high = *o.p.stuck
	}
	h.setWireLocked(o.p, high)
	h.log.add(Op{Kind: OpSet, Name: o.p.name, Level: l, High: high})
	return nil
}

func (o *output) Level() hal.Level {
	o.h.mu.Lock()
	defer o.h.mu.Unlock()
	return o.p.lastSet
}

func (o *output) Name() string { return o.p.name }

func (o *output) Close() error {
	return closeHandle(o.h, o.p, o.gen, &o.once, o.done)
}

func closeHandle(h *HAL, p *pin, gen int, once *sync.Once, done chan struct{}) error {
	once.Do(func() { close(done) })
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.gen != gen || p.mode == unopened {
		return nil
	}
	p.mode = unopened
	p.raw = nil
	h.log.add(Op{Kind: OpClose, Name: p.name})
	h.notifyLocked()
	return nil
}

// input is an open DigitalIn handle.
type input struct {
	h    *HAL
	p    *pin
	gen  int
	edge hal.Edge // immutable copy: the pin's config changes if it is reopened
	done chan struct{}
	once sync.Once
}

func (in *input) Read(ctx context.Context) (hal.Level, error) {
	if err := in.h.delay(ctx, in.p.name, in.done); err != nil {
		return hal.Low, fmt.Errorf("fake: read %q: %w", in.p.name, err)
	}
	h := in.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := usableLocked(h, in.p, in.gen, "read"); err != nil {
		return hal.Low, err
	}
	if e := h.errs[in.p.name]; e != nil {
		err := fmt.Errorf("fake: read %q: %w", in.p.name, e)
		h.log.add(Op{Kind: OpRead, Name: in.p.name, Err: err})
		return hal.Low, err
	}
	l := logical(in.p.high, in.p.inCfg.ActiveLow)
	h.log.add(Op{Kind: OpRead, Name: in.p.name, Level: l, High: in.p.high})
	return l, nil
}

// WaitForEdge returns the next debounced edge. A wire transition counts once
// the wire has stayed at its new level for the debounce time; shorter
// pulses are bounces and are dropped, and an edge is reported only when the
// settled level differs from the last reported one. Edges are queued from
// open, so none is lost between calls.
func (in *input) WaitForEdge(ctx context.Context) (hal.EdgeEvent, error) {
	if in.edge == hal.EdgeNone {
		return hal.EdgeEvent{}, fmt.Errorf("fake: wait for edge on %q: opened with EdgeNone: %w", in.p.name, hal.ErrInvalid)
	}
	h := in.h
	for {
		h.mu.Lock()
		if err := usableLocked(h, in.p, in.gen, "wait for edge"); err != nil {
			h.mu.Unlock()
			return hal.EdgeEvent{}, err
		}
		ev, ok, wait := in.nextLocked(h.cfg.clock.Now())
		if ok {
			h.log.add(Op{Kind: OpEdge, Name: in.p.name, Level: ev.Level, High: bool(ev.Level) != in.p.inCfg.ActiveLow})
			h.mu.Unlock()
			return ev, nil
		}
		changed := h.changed
		h.mu.Unlock()

		var timer Timer
		var fire <-chan time.Time
		if wait > 0 {
			timer = h.cfg.clock.NewTimer(wait)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			stopTimer(timer)
			return hal.EdgeEvent{}, fmt.Errorf("fake: wait for edge on %q: %w", in.p.name, ctx.Err())
		case <-in.done:
			stopTimer(timer)
			return hal.EdgeEvent{}, fmt.Errorf("fake: wait for edge on %q: %w", in.p.name, hal.ErrClosed)
		case <-h.done:
			stopTimer(timer)
			return hal.EdgeEvent{}, fmt.Errorf("fake: wait for edge on %q: %w", in.p.name, hal.ErrClosed)
		case <-changed:
		case <-fire:
		}
		stopTimer(timer)
	}
}

func stopTimer(t Timer) {
	if t != nil {
		t.Stop()
	}
}

// nextLocked consumes queued transitions up to the next reportable edge. If
// the newest transition is still inside its debounce window it returns how
// long to wait before it settles.
func (in *input) nextLocked(now time.Time) (hal.EdgeEvent, bool, time.Duration) {
	p, deb := in.p, in.p.inCfg.Debounce
	for len(p.raw) > 0 {
		t := p.raw[0]
		if len(p.raw) > 1 {
			if p.raw[1].at.Sub(t.at) < deb {
				p.raw = p.raw[1:] // a bounce: superseded before it settled
				continue
			}
		} else if settle := deb - now.Sub(t.at); settle > 0 {
			return hal.EdgeEvent{}, false, settle
		}
		p.raw = p.raw[1:]
		l := logical(t.high, p.inCfg.ActiveLow)
		if l == p.reported {
			continue
		}
		p.reported = l
		if selected(p.inCfg.Edge, l) {
			return hal.EdgeEvent{Level: l, Time: t.at}, true, 0
		}
	}
	return hal.EdgeEvent{}, false, 0
}

func selected(e hal.Edge, l hal.Level) bool {
	switch e {
	case hal.EdgeBoth:
		return true
	case hal.EdgeRising:
		return l == hal.High
	case hal.EdgeFalling:
		return l == hal.Low
	}
	return false
}

func (in *input) Name() string { return in.p.name }

func (in *input) Close() error {
	return closeHandle(in.h, in.p, in.gen, &in.once, in.done)
}

// busSeed derives a per-bus seed so fault draws on one bus do not depend on
// traffic on another.
func busSeed(seed uint64, name string) *rand.Rand {
	f := fnv.New64a()
	_, _ = f.Write([]byte(name))
	return rand.New(rand.NewPCG(seed, f.Sum64()))
}
