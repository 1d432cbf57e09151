package periph

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3/gpioioctl"
	_ "periph.io/x/host/v3/sysfs" // registers sysfs-i2c (and other sysfs drivers)

	"github.com/pinshadow/pinshadow/hal"
)

// Options configures the backend. The zero value drives the real machine.
type Options struct {
	// SysfsRoot is where sysfs is mounted ("/sys" if empty). Tests point it
	// at a temporary directory that mimics /sys/class/pwm.
	SysfsRoot string
	// FindLine resolves a line name to a periph pin. Nil uses the GPIO
	// character device lines periph registered (gpioreg, gpioioctl.Chips).
	FindLine func(name string) (gpio.PinIO, error)
	// OpenI2C opens an I2C bus by name. Nil uses periph's i2creg
	// (/dev/i2c-N through sysfs-i2c).
	OpenI2C func(name string) (i2c.BusCloser, error)
	// EdgeSlice bounds each blocking periph WaitForEdge call so a waiter
	// notices its context (default 100 ms). It is also the longest Close of
	// an input can take.
	EdgeSlice time.Duration
	// ExportTimeout bounds the wait for udev to make a freshly exported PWM
	// channel writable (default 2 s).
	ExportTimeout time.Duration

	fs sysfs // tests substitute a fake that reacts to export/unexport
}

// HAL drives real hardware through periph.io. Safe for concurrent use.
type HAL struct {
	opts    Options
	drivers *driverreg.State

	mu     sync.Mutex
	closed bool
	open   map[string]func() error // resource key → close
}

var _ hal.HAL = (*HAL)(nil)

// New returns a backend. Unless both FindLine and OpenI2C are given it
// initialises periph's drivers: only those blank-imported here (the GPIO
// character device and sysfs), never host.Init(), so nothing touches
// /dev/mem and the same code runs on Pi 0–5 and other boards. Drivers that
// fail (no permission, nothing present) are reported by Drivers, not as an
// error: the lines or buses they would give are then simply not found.
func New(opts Options) (*HAL, error) {
	if opts.SysfsRoot == "" {
		opts.SysfsRoot = "/sys"
	}
	if opts.EdgeSlice <= 0 {
		opts.EdgeSlice = 100 * time.Millisecond
	}
	if opts.ExportTimeout <= 0 {
		opts.ExportTimeout = 2 * time.Second
	}
	if opts.fs == nil {
		opts.fs = osFS{}
	}
	h := &HAL{opts: opts, open: map[string]func() error{}}
	if opts.FindLine == nil || opts.OpenI2C == nil {
		st, err := driverreg.Init()
		if err != nil {
			return nil, fmt.Errorf("periph: initialising drivers: %w", err)
		}
		h.drivers = st
	}
	if h.opts.FindLine == nil {
		h.opts.FindLine = findLine
	}
	if h.opts.OpenI2C == nil {
		h.opts.OpenI2C = i2creg.Open
	}
	return h, nil
}

// Drivers reports which periph drivers loaded, were skipped or failed (nil
// when all lookups were injected). Log the failures: they explain missing
// lines and buses (e.g. "permission denied" without group gpio).
func (h *HAL) Drivers() *driverreg.State { return h.drivers }

// Close releases everything still open.
func (h *HAL) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	closers := make([]func() error, 0, len(h.open))
	for _, c := range h.open {
		closers = append(closers, c)
	}
	h.mu.Unlock()
	var errs []error
	for _, c := range closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// claim records key as open; release undoes it.
func (h *HAL) claim(key, what string, closer func() error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("periph: open %s: %w", what, hal.ErrClosed)
	}
	if _, ok := h.open[key]; ok {
		return fmt.Errorf("periph: open %s: %w: already open in this agent", what, hal.ErrBusy)
	}
	h.open[key] = closer
	return nil
}

func (h *HAL) release(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.open, key)
}

// ---- line names ----------------------------------------------------------

// ChipOffset is a line addressed as "chip/offset": chip is a gpiochip name
// ("gpiochip0") or label ("pinctrl-rp1"), offset the line's index on it.
type ChipOffset struct {
	Chip   string
	Offset int
}

// ParseLineName splits "gpiochip0/17" into chip and offset; ok is false for
// a kernel line name such as "GPIO17". A bare number is rejected: it is
// ambiguous between BCM numbers, header pins and chip offsets.
func ParseLineName(name string) (co ChipOffset, ok bool, err error) {
	if name == "" {
		return ChipOffset{}, false, fmt.Errorf("periph: empty line name: %w", hal.ErrInvalid)
	}
	if _, e := strconv.Atoi(name); e == nil {
		return ChipOffset{}, false, fmt.Errorf("periph: line %q: a bare number is ambiguous; write the kernel line name (GPIO%s) or chip/offset (gpiochip0/%s): %w", name, name, name, hal.ErrInvalid)
	}
	chip, off, found := strings.Cut(name, "/")
	if !found {
		return ChipOffset{}, false, nil
	}
	n, e := strconv.Atoi(off)
	if chip == "" || e != nil || n < 0 || strings.Contains(off, "/") {
		return ChipOffset{}, false, fmt.Errorf("periph: line %q: want chip/offset like gpiochip0/17: %w", name, hal.ErrInvalid)
	}
	return ChipOffset{Chip: chip, Offset: n}, true, nil
}

// findLine resolves names against the GPIO character device lines periph
// found. Only gpioioctl lines are returned: the sysfs-gpio driver also
// registers "GPIO<n>" names (global sysfs numbers, base 512 on recent Pi
// kernels) that must never be mistaken for kernel line names.
func findLine(name string) (gpio.PinIO, error) {
	co, isChip, err := ParseLineName(name)
	if err != nil {
		return nil, err
	}
	chips := gpioioctl.Chips
	if len(chips) == 0 {
		return nil, fmt.Errorf("periph: line %q: %w: no GPIO chip is readable (is /dev/gpiochip* present and is the user in group gpio?)", name, hal.ErrNotFound)
	}
	if isChip {
		var names []string
		for _, c := range chips {
			names = append(names, c.Name()+" ("+c.Label()+")")
			if c.Name() != co.Chip && c.Label() != co.Chip {
				continue
			}
			if co.Offset >= c.LineCount() {
				return nil, fmt.Errorf("periph: line %q: %w: %s has lines 0–%d", name, hal.ErrNotFound, c.Name(), c.LineCount()-1)
			}
			return c.ByNumber(co.Offset), nil
		}
		return nil, fmt.Errorf("periph: line %q: %w: no chip %q; chips: %s", name, hal.ErrNotFound, co.Chip, strings.Join(names, ", "))
	}
	if p, ok := gpioreg.ByName(name).(*gpioioctl.GPIOLine); ok && p != nil {
		return p, nil
	}
	for _, c := range chips {
		if l := c.ByName(name); l != nil {
			return l, nil
		}
	}
	return nil, fmt.Errorf("periph: line %q: %w: no GPIO line has that kernel name (list them with gpioinfo; on boards without line names use chip/offset such as %s/17)", name, hal.ErrNotFound, chips[0].Name())
}

// lineErr wraps an error from periph, mapping "line in use" to hal.ErrBusy.
func lineErr(op, name string, err error) error {
	// periph's gpioioctl reports the kernel's EBUSY as text only.
	if errors.Is(err, syscall.EBUSY) || strings.Contains(err.Error(), syscall.EBUSY.Error()) {
		return fmt.Errorf("periph: %s %q: %w: the kernel says another consumer holds the line (see gpioinfo): %v", op, name, hal.ErrBusy, err)
	}
	return fmt.Errorf("periph: %s %q: %w", op, name, err)
}

func (h *HAL) resolve(name string) (gpio.PinIO, error) {
	p, err := h.opts.FindLine(name)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("periph: line %q: %w", name, hal.ErrNotFound)
	}
	return p, nil
}

// lineKey identifies a line for busy detection: periph hands out one object
// per line, whatever name it was found by ("GPIO17" or "gpiochip0/17").
func lineKey(p gpio.PinIO) string { return fmt.Sprintf("line:%p", p) }

// releaseLine gives the line back to the kernel when periph allows it.
// gpioioctl.GPIOLine has Close() without an error.
func releaseLine(p gpio.PinIO) error {
	switch c := p.(type) {
	case interface{ Close() error }:
		return c.Close()
	case interface{ Close() }:
		c.Close()
	}
	return nil
}

// ---- outputs -------------------------------------------------------------

// OpenOutput requests the line as an output at its initial level.
//
// Glitch-free initial level: the GPIO uAPI v2 can request a line as an
// output with its value in the same ioctl (GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES),
// but periph's GPIOLine does not expose it. Its first Out(level) requests the
// line (as it is), switches it to output (the kernel then drives 0) and only
// then writes level. So: an initial physical low is glitch-free; an initial
// physical high (e.g. an active-low relay kept off) can show a low pulse
// lasting one ioctl (microseconds) — too short to pull in a relay, but
// visible to fast logic. We make the single Out call with the final
// physical level straight away, which is the best periph allows; a backend
// of our own on x/sys/unix could close the gap.
func (h *HAL) OpenOutput(ctx context.Context, name string, cfg hal.OutputConfig) (hal.DigitalOut, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := h.resolve(name)
	if err != nil {
		return nil, err
	}
	o := &output{name: name, line: p, activeLow: cfg.ActiveLow, level: cfg.Initial}
	key := lineKey(p)
	if err := h.claim(key, "output "+strconv.Quote(name), o.Close); err != nil {
		return nil, err
	}
	o.release = func() { h.release(key) }
	if err := p.Out(physical(cfg.Initial, cfg.ActiveLow)); err != nil {
		h.release(key)
		_ = releaseLine(p)
		return nil, lineErr("open output", name, err)
	}
	return o, nil
}

func physical(l hal.Level, activeLow bool) gpio.Level { return gpio.Level(bool(l) != activeLow) }

func logical(l gpio.Level, activeLow bool) hal.Level { return hal.Level(bool(l) != activeLow) }

type output struct {
	name      string
	line      gpio.PinIO
	activeLow bool
	release   func()

	mu     sync.Mutex
	level  hal.Level
	closed bool
}

// Set writes the level. It never reads the line back: periph's Read on an
// output silently reconfigures it as a pulled-up input.
func (o *output) Set(ctx context.Context, l hal.Level) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return fmt.Errorf("periph: set %q: %w", o.name, hal.ErrClosed)
	}
	if err := o.line.Out(physical(l, o.activeLow)); err != nil {
		return lineErr("set", o.name, err)
	}
	o.level = l
	return nil
}

func (o *output) Level() hal.Level {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.level
}

func (o *output) Name() string { return o.name }

// Close gives the line back to the kernel; the line keeps its level until
// someone else requests it (kernel and driver dependent).
func (o *output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	o.release()
	return releaseLine(o.line)
}
