package fake

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"github.com/pinshadow/pinshadow/hal"
)

// Device is a simulated I2C chip attached to a Bus at one address. Tx gets
// the bytes written and must fill r (the read phase, after a repeated
// start) exactly as the chip would; an error it returns is passed to the
// caller unchanged. Register-level models live in hal/fake/chips.
type Device interface {
	Tx(w, r []byte) error
}

// FaultKind is what an injected I2C fault does to a transaction.
type FaultKind int

// I2C fault kinds.
const (
	// FaultNACK: the address is not acknowledged (errors.Is hal.ErrNACK).
	FaultNACK FaultKind = iota + 1
	// FaultTimeout: the bus times out (errors.Is hal.ErrTimeout). It is
	// reported at once; add latency to make it slow as well.
	FaultTimeout
)

func (k FaultKind) String() string {
	switch k {
	case FaultNACK:
		return "nack"
	case FaultTimeout:
		return "timeout"
	}
	return "fault(" + strconv.Itoa(int(k)) + ")"
}

func (k FaultKind) err() error {
	if k == FaultTimeout {
		return hal.ErrTimeout
	}
	return hal.ErrNACK
}

// I2CFault is one fault-injection rule. A transaction on a matching address
// fails when any of the triggers fires: the random Rate, the Next counter,
// or its number falling within From..To.
type I2CFault struct {
	Kind FaultKind
	// Addrs limits the rule to these addresses; empty means every address.
	Addrs []uint16
	// Rate is the probability (0–1) that a matching transaction fails,
	// drawn from the bus's seeded RNG (see WithSeed): deterministic.
	Rate float64
	// Next fails the next Next matching transactions.
	Next int
	// From..To (inclusive, 1-based) fails the bus's transactions with these
	// numbers; Bus.Count tells how many have happened. Zero disables.
	From, To int
}

type faultRule struct {
	I2CFault
	left int // remaining Next
}

// Bus is a simulated I2C bus. It implements periph's i2c.BusCloser, so a
// standalone Bus (NewBus) can be handed straight to a driver.
type Bus struct {
	name  string
	clock Clock
	log   *Log
	done  chan struct{}

	mu      sync.Mutex
	closed  bool
	devs    map[uint16]Device
	rules   []*faultRule
	rng     *rand.Rand
	count   int
	latency time.Duration
	speed   physic.Frequency
}

var _ i2c.BusCloser = (*Bus)(nil)

// NewBus returns a standalone bus with its own log (see Bus.Log); WithClock
// and WithSeed apply.
func NewBus(name string, opts ...Option) *Bus {
	cfg := newConfig(opts)
	return newBus(busKey(name), cfg.clock, newLog(cfg.clock, cfg.logLimit), cfg.seed)
}

func newBus(name string, clock Clock, log *Log, seed uint64) *Bus {
	return &Bus{
		name:  name,
		clock: clock,
		log:   log,
		done:  make(chan struct{}),
		devs:  map[uint16]Device{},
		rng:   busSeed(seed, name),
	}
}

// busKey normalises "1", "I2C1", "i2c-1" and "/dev/i2c-1" to "1"; other
// names are kept as they are.
func busKey(name string) string {
	n := strings.TrimPrefix(name, "/dev/")
	for _, p := range []string{"i2c-", "I2C", "i2c"} {
		if rest, ok := strings.CutPrefix(n, p); ok {
			if _, err := strconv.Atoi(rest); err == nil {
				return rest
			}
		}
	}
	return name
}

// Bus returns the simulated bus name (created on first use), so a test can
// attach chips before the code under test opens it. It returns nil if the
// HAL restricts bus names and name is not one of them.
func (h *HAL) Bus(name string) *Bus {
	key := busKey(name)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.buses != nil && !h.cfg.buses[key] {
		return nil
	}
	b := h.buses[key]
	if b == nil {
		b = newBus(key, h.cfg.clock, h.log, h.cfg.seed)
		if h.closed {
			b.close()
		}
		h.buses[key] = b
	}
	return b
}

// OpenI2C opens a handle on bus name. Closing the handle does not close the
// simulated bus (other handles and attached chips stay).
func (h *HAL) OpenI2C(ctx context.Context, name string) (hal.I2CBus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := busKey(name)
	h.mu.Lock()
	if err := h.checkOpenLocked("i2c", key, h.cfg.buses); err != nil {
		h.mu.Unlock()
		return nil, err
	}
	h.mu.Unlock()
	b := h.Bus(key)
	h.log.add(Op{Kind: OpOpen, Name: key, Detail: "i2c"})
	return &busHandle{b: b}, nil
}

// Attach puts dev at addr, replacing whatever was there; a nil dev detaches.
func (b *Bus) Attach(addr uint16, dev Device) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if dev == nil {
		delete(b.devs, addr)
		return
	}
	b.devs[addr] = dev
}

// Detach removes the device at addr (it stops acknowledging).
func (b *Bus) Detach(addr uint16) { b.Attach(addr, nil) }

// InjectFault adds a fault rule; rules accumulate until ClearFaults.
func (b *Bus) InjectFault(f I2CFault) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rules = append(b.rules, &faultRule{I2CFault: f, left: f.Next})
}

// ClearFaults removes every fault rule.
func (b *Bus) ClearFaults() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rules = nil
}

// SetLatency makes every later transaction take d on the bus clock before
// it happens. Tx has no context: Close of the bus cuts the wait short.
func (b *Bus) SetLatency(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.latency = d
}

// Count returns how many transactions the bus has seen (including failed ones).
func (b *Bus) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

// Log returns the log the bus writes to (the HAL's, or its own when standalone).
func (b *Bus) Log() *Log { return b.log }

// Speed returns the last speed set (0 if never).
func (b *Bus) Speed() physic.Frequency {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.speed
}

// Tx runs one transaction: write w, then (repeated start) read len(r) bytes.
func (b *Bus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	lat := b.latency
	b.mu.Unlock()
	if err := sleep(context.Background(), b.clock, lat, b.done, nil); err != nil {
		return fmt.Errorf("fake i2c %s: addr %#x: %w", b.name, addr, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("fake i2c %s: addr %#x: %w", b.name, addr, hal.ErrClosed)
	}
	b.count++
	if kind, why := b.faultLocked(addr); kind != 0 {
		err := fmt.Errorf("fake i2c %s: addr %#x: injected %s (%s): %w", b.name, addr, kind, why, kind.err())
		b.log.add(Op{Kind: OpFault, Name: b.name, Addr: addr, Detail: kind.String() + ": " + why})
		b.log.add(Op{Kind: OpI2CTx, Name: b.name, Addr: addr, W: cloneBytes(w), Err: err})
		return err
	}
	dev := b.devs[addr]
	if dev == nil {
		err := fmt.Errorf("fake i2c %s: nothing attached at addr %#x: %w", b.name, addr, hal.ErrNACK)
		b.log.add(Op{Kind: OpI2CTx, Name: b.name, Addr: addr, W: cloneBytes(w), Err: err})
		return err
	}
	err := dev.Tx(w, r)
	b.log.add(Op{Kind: OpI2CTx, Name: b.name, Addr: addr, W: cloneBytes(w), R: cloneBytes(r), Err: err})
	return err
}

// faultLocked decides whether transaction number b.count to addr fails.
// Every matching rate rule draws exactly one number, so the outcome depends
// only on the seed and the sequence of transactions.
func (b *Bus) faultLocked(addr uint16) (FaultKind, string) {
	for _, r := range b.rules {
		if len(r.Addrs) > 0 && !slices.Contains(r.Addrs, addr) {
			continue
		}
		hit, why := false, ""
		if r.From > 0 && b.count >= r.From && b.count <= max(r.To, r.From) {
			hit, why = true, fmt.Sprintf("transaction %d in %d..%d", b.count, r.From, max(r.To, r.From))
		}
		if r.left > 0 && !hit {
			r.left--
			hit, why = true, fmt.Sprintf("next %d", r.Next)
		}
		if r.Rate > 0 {
			if x := b.rng.Float64(); x < r.Rate && !hit {
				hit, why = true, fmt.Sprintf("rate %g", r.Rate)
			}
		}
		if hit {
			return r.Kind, why
		}
	}
	return 0, ""
}

// SetSpeed records the speed (the simulation ignores it).
func (b *Bus) SetSpeed(f physic.Frequency) error {
	if f <= 0 {
		return fmt.Errorf("fake i2c %s: speed %v: %w", b.name, f, hal.ErrInvalid)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.speed = f
	b.log.add(Op{Kind: OpSpeed, Name: b.name, Freq: float64(f) / float64(physic.Hertz)})
	return nil
}

// String returns the bus name in periph's style ("I2C1").
func (b *Bus) String() string {
	if _, err := strconv.Atoi(b.name); err == nil {
		return "I2C" + b.name
	}
	return b.name
}

// Close closes the simulated bus for everyone: later transactions fail with
// hal.ErrClosed.
func (b *Bus) Close() error {
	b.close()
	b.log.add(Op{Kind: OpClose, Name: b.name})
	return nil
}

func (b *Bus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
}

// busHandle is what OpenI2C returns: a Bus view with its own Close.
type busHandle struct {
	b      *Bus
	closed atomic.Bool
}

func (h *busHandle) Tx(addr uint16, w, r []byte) error {
	if h.closed.Load() {
		return fmt.Errorf("fake i2c %s: addr %#x: handle: %w", h.b.name, addr, hal.ErrClosed)
	}
	return h.b.Tx(addr, w, r)
}

func (h *busHandle) SetSpeed(f physic.Frequency) error { return h.b.SetSpeed(f) }
func (h *busHandle) String() string                    { return h.b.String() }

func (h *busHandle) Close() error {
	if h.closed.CompareAndSwap(false, true) {
		h.b.log.add(Op{Kind: OpClose, Name: h.b.name, Detail: "i2c handle"})
	}
	return nil
}
